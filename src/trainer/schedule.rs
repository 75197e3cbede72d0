//! Which campaign trains next: a pure state machine, so the coalescing rules can be tested
//! without threads, clocks or a database.
//!
//! Rules: a campaign is at most once in the queue and at most once running. New labels
//! while it runs mark it dirty, and a dirty campaign is queued again exactly once when its
//! run ends, however many notifications arrived. A campaign found by the periodic scan is
//! queued only when idle: the scan sees a running campaign as behind (its checkpoint is
//! not written yet), which must not cause a second run. Campaigns run in queue order.
//!
//! Imports nothing beyond std.

use std::collections::{HashMap, VecDeque};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Entry {
    queued: bool,
    running: bool,
    dirty: bool,
}

/// The trainer's queue of campaigns and what each is doing.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    entries: HashMap<i64, Entry>,
    queue: VecDeque<i64>,
}

impl Schedule {
    /// New labels were committed for `id`.
    pub(crate) fn notify(&mut self, id: i64) {
        let entry = self.entries.entry(id).or_default();
        if entry.running {
            entry.dirty = true;
        } else if !entry.queued {
            entry.queued = true;
            self.queue.push_back(id);
        }
    }

    /// The periodic scan found `id` behind its labels.
    pub(crate) fn found(&mut self, id: i64) {
        let entry = self.entries.entry(id).or_default();
        if !entry.running && !entry.queued {
            entry.queued = true;
            self.queue.push_back(id);
        }
    }

    /// The next campaign to run, now marked running.
    pub(crate) fn next(&mut self) -> Option<i64> {
        let id = self.queue.pop_front()?;
        let entry = self.entries.entry(id).or_default();
        entry.queued = false;
        entry.running = true;
        Some(id)
    }

    /// The run of `id` ended (trained, skipped or failed): queue it once more if labels
    /// arrived meanwhile.
    pub(crate) fn finish(&mut self, id: i64) {
        let requeue = match self.entries.get_mut(&id) {
            Some(entry) => {
                entry.running = false;
                std::mem::take(&mut entry.dirty)
            }
            None => false,
        };
        if requeue {
            self.notify(id);
        } else if self.entries.get(&id).is_some_and(|e| !e.queued) {
            self.entries.remove(&id);
        }
    }

    /// Whether `id` is queued or running here.
    pub(crate) fn is_active(&self, id: i64) -> bool {
        self.entries.get(&id).is_some_and(|e| e.queued || e.running)
    }

    /// Nothing is queued or running.
    pub(crate) fn is_idle(&self) -> bool {
        self.entries.is_empty()
    }

    /// Campaigns currently running.
    #[cfg(test)]
    fn running(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .entries
            .iter()
            .filter(|(_, e)| e.running)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::Schedule;

    /// Drains the schedule one run at a time, applying `during(run_index, id, schedule)`
    /// while each run is going; returns the ids in the order they ran.
    fn drain(s: &mut Schedule, mut during: impl FnMut(usize, i64, &mut Schedule)) -> Vec<i64> {
        let mut ran = Vec::new();
        while let Some(id) = s.next() {
            during(ran.len(), id, s);
            ran.push(id);
            s.finish(id);
            assert!(ran.len() < 100, "the schedule never drains");
        }
        ran
    }

    #[test]
    fn one_notification_gives_one_run() {
        let mut s = Schedule::default();
        s.notify(7);
        assert_eq!(drain(&mut s, |_, _, _| {}), vec![7]);
        assert!(!s.is_active(7));
    }

    #[test]
    fn notifications_while_queued_coalesce_into_one_run() {
        let mut s = Schedule::default();
        for _ in 0..10 {
            s.notify(7);
        }
        assert_eq!(drain(&mut s, |_, _, _| {}), vec![7]);
    }

    #[test]
    fn labels_during_a_run_cause_exactly_one_more_run() {
        let mut s = Schedule::default();
        s.notify(7);
        let ran = drain(&mut s, |i, id, s| {
            if i == 0 {
                for _ in 0..25 {
                    s.notify(id);
                }
            }
        });
        assert_eq!(ran, vec![7, 7]);
    }

    #[test]
    fn the_scan_does_not_add_a_run_to_a_running_campaign() {
        let mut s = Schedule::default();
        s.notify(7);
        let ran = drain(&mut s, |i, id, s| {
            if i == 0 {
                s.found(id);
                s.found(id);
            }
        });
        assert_eq!(ran, vec![7]);
    }

    #[test]
    fn the_scan_queues_an_idle_campaign_once() {
        let mut s = Schedule::default();
        s.found(3);
        s.found(3);
        s.notify(3);
        assert!(s.is_active(3));
        assert_eq!(drain(&mut s, |_, _, _| {}), vec![3]);
    }

    #[test]
    fn campaigns_take_turns_in_arrival_order() {
        let mut s = Schedule::default();
        s.notify(1);
        s.notify(2);
        s.found(3);
        let ran = drain(&mut s, |i, _, s| {
            if i == 0 {
                s.notify(1); // dirty: goes to the back of the queue
                s.notify(2); // already queued: no effect
            }
        });
        assert_eq!(ran, vec![1, 2, 3, 1]);
    }

    #[test]
    fn next_marks_running_and_finish_clears_it() {
        let mut s = Schedule::default();
        s.notify(4);
        s.notify(5);
        assert_eq!(s.next(), Some(4));
        assert_eq!(s.running(), vec![4]);
        assert!(s.is_active(4) && s.is_active(5));
        s.finish(4);
        assert!(s.running().is_empty());
        assert!(!s.is_active(4));
        assert_eq!(s.next(), Some(5));
        assert_eq!(s.next(), None);
    }

    #[test]
    fn finishing_an_unknown_campaign_is_harmless() {
        let mut s = Schedule::default();
        s.finish(42);
        assert_eq!(s.next(), None);
    }
}
