//! Which values each campaign already holds, for rounds: a round must not propose one of
//! them, and reading every value of a campaign for every round made a round's cost grow with
//! the campaign (a second at a few hundred thousand candidates).
//!
//! Each campaign's values are kept as 64-bit fingerprints of their canonical texts (about
//! 20 bytes each, so a million values take some 20 MB instead of the texts' hundreds), and a
//! round reads only the candidates stored since the last read (`id` above the highest seen:
//! candidates are never deleted, and one campaign's inserts commit one at a time in id
//! order). Two texts sharing a fingerprint would hide one of them from proposals; at 64 bits
//! that takes billions of values. Every replica keeps its own cache and catches up from the
//! database, so replicas never disagree for longer than one read.

use crate::error::Error;
use crate::gfn::propose::SeenValues;
use crate::store::Store;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OwnedRwLockReadGuard, RwLock};

/// Campaigns whose values stay cached; the least recently used one is dropped beyond it (and
/// read again in full when it next draws a round).
pub const CACHED_CAMPAIGNS: usize = 64;

/// Fingerprints cached over all campaigns (about 80 MB): beyond it the least recently used
/// other campaigns are dropped, so that many large campaigns cannot add up without bound. A
/// single campaign larger than this stays while it draws.
pub const CACHED_VALUES: usize = 4_000_000;

/// Fingerprints of one campaign's values, and how far they have been read.
#[derive(Default)]
pub struct CampaignValues {
    /// Highest candidate id read so far.
    after_id: i64,
    fingerprints: HashSet<u64>,
}

impl std::fmt::Debug for CampaignValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CampaignValues")
            .field("after_id", &self.after_id)
            .field("values", &self.fingerprints.len())
            .finish()
    }
}

impl CampaignValues {
    /// Number of values the campaign holds.
    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    /// Whether the campaign holds no value yet.
    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }
}

impl SeenValues for CampaignValues {
    fn contains(&self, canonical: &str) -> bool {
        self.fingerprints.contains(&fingerprint(canonical))
    }
}

/// The fingerprint of a canonical text: a keyed-once hash, the same for the life of the
/// process (the cache is never written anywhere).
fn fingerprint(canonical: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    canonical.hash(&mut hasher);
    hasher.finish()
}

/// One campaign's values, shared by its draws.
type SharedValues = Arc<RwLock<CampaignValues>>;

/// One cached campaign: its values, the tick of its last use, and how many values it held
/// after its last catch-up.
#[derive(Debug)]
struct Entry {
    values: SharedValues,
    used: u64,
    size: usize,
}

/// The campaigns' cached values; see the module documentation.
#[derive(Debug)]
pub struct SeenCache {
    campaigns: Mutex<HashMap<i64, Entry>>,
    /// Most fingerprints over all campaigns ([`CACHED_VALUES`]).
    max_values: usize,
    /// The rounds each campaign is drawing now (see [`SeenCache::drawing`]).
    drawing: Arc<Mutex<HashMap<i64, Drawing>>>,
}

impl Default for SeenCache {
    fn default() -> Self {
        Self {
            campaigns: Mutex::default(),
            max_values: CACHED_VALUES,
            drawing: Arc::default(),
        }
    }
}

/// The rounds of one campaign drawing now in this process: their places, and the values
/// each holds but has not stored yet.
#[derive(Debug, Default)]
struct Drawing {
    places: BTreeSet<u64>,
    claimed: HashMap<u64, Vec<String>>,
}

/// A round's place among the rounds of its campaign drawing at the same time in this
/// process: the lowest free one, so 0 for a round drawn alone. Given back, with the values
/// it claimed, when dropped.
#[derive(Debug)]
pub struct DrawingPlace {
    campaign_id: i64,
    /// 0 for the first round drawing, 1 for a second one drawing beside it, ...
    pub place: u64,
    drawing: Arc<Mutex<HashMap<i64, Drawing>>>,
}

impl DrawingPlace {
    /// Records `values` (canonical texts) as this round's until it ends, so that the other
    /// rounds of the campaign drawing here leave them alone.
    pub fn claim(&self, values: Vec<String>) {
        let mut drawing = self.drawing.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(campaign) = drawing.get_mut(&self.campaign_id) {
            campaign.claimed.insert(self.place, values);
        }
    }

    /// The values the other rounds of the campaign drawing here hold and have not stored.
    pub fn claimed_by_others(&self) -> HashSet<String> {
        let drawing = self.drawing.lock().unwrap_or_else(PoisonError::into_inner);
        drawing
            .get(&self.campaign_id)
            .into_iter()
            .flat_map(|c| c.claimed.iter())
            .filter(|(place, _)| **place != self.place)
            .flat_map(|(_, values)| values.iter().cloned())
            .collect()
    }
}

impl Drop for DrawingPlace {
    fn drop(&mut self) {
        let mut drawing = self.drawing.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(campaign) = drawing.get_mut(&self.campaign_id) {
            campaign.places.remove(&self.place);
            campaign.claimed.remove(&self.place);
            if campaign.places.is_empty() {
                drawing.remove(&self.campaign_id);
            }
        }
    }
}

impl SeenCache {
    /// The campaign's values, brought up to date with the store, read-locked for a draw:
    /// concurrent draws of the campaign share them, and a later round's catch-up waits for
    /// them to finish (asynchronously: the guard is held on a blocking thread).
    pub async fn current(
        &self,
        store: &Store,
        campaign_id: i64,
    ) -> Result<OwnedRwLockReadGuard<CampaignValues>, Error> {
        let values = self.entry(campaign_id);
        let after_id = values.read().await.after_id;
        let new = store.campaign_values_after(campaign_id, after_id).await?;
        if !new.is_empty() {
            let mut values = values.write().await;
            // A concurrent catch-up may have read some of these already: inserting twice
            // changes nothing, and the highest id only grows.
            for (id, text) in &new {
                values.fingerprints.insert(fingerprint(text));
                values.after_id = values.after_id.max(*id);
            }
        }
        let guard = values.read_owned().await;
        self.record_size(campaign_id, guard.len());
        Ok(guard)
    }

    /// The campaign's entry, made when missing, marked as just used; the least recently used
    /// entry goes when there are more than [`CACHED_CAMPAIGNS`].
    fn entry(&self, campaign_id: i64) -> SharedValues {
        let mut campaigns = self.lock();
        let tick = campaigns.values().map(|e| e.used).max().unwrap_or(0) + 1;
        let values = match campaigns.get_mut(&campaign_id) {
            Some(entry) => {
                entry.used = tick;
                entry.values.clone()
            }
            None => {
                let values = Arc::new(RwLock::new(CampaignValues::default()));
                let entry = Entry {
                    values: values.clone(),
                    used: tick,
                    size: 0,
                };
                campaigns.insert(campaign_id, entry);
                values
            }
        };
        while campaigns.len() > CACHED_CAMPAIGNS {
            if !drop_oldest_other(&mut campaigns, campaign_id) {
                break;
            }
        }
        values
    }

    /// Notes the campaign's size after a catch-up and drops the least recently used other
    /// campaigns while all of them hold more than `max_values`.
    fn record_size(&self, campaign_id: i64, size: usize) {
        let mut campaigns = self.lock();
        if let Some(entry) = campaigns.get_mut(&campaign_id) {
            entry.size = size;
        }
        while campaigns.values().map(|e| e.size).sum::<usize>() > self.max_values {
            if !drop_oldest_other(&mut campaigns, campaign_id) {
                break;
            }
        }
    }

    /// The map; it only ever holds whole entries, so one left by a panicking holder is
    /// sound.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Entry>> {
        self.campaigns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a round of the campaign that starts drawing: rounds drawing at the same
    /// time get different places, so that they can draw different batches, while a round
    /// drawn alone always gets 0 and stays reproducible from the campaign's seed.
    pub fn drawing(&self, campaign_id: i64) -> DrawingPlace {
        let mut drawing = self.drawing.lock().unwrap_or_else(PoisonError::into_inner);
        let campaign = drawing.entry(campaign_id).or_default();
        let place = (0..).find(|p| !campaign.places.contains(p)).unwrap_or(0);
        campaign.places.insert(place);
        DrawingPlace {
            campaign_id,
            place,
            drawing: self.drawing.clone(),
        }
    }

    /// Number of campaigns cached.
    pub fn cached_campaigns(&self) -> usize {
        self.lock().len()
    }
}

/// Drops the least recently used campaign other than `keep`; false when there is none.
fn drop_oldest_other(campaigns: &mut HashMap<i64, Entry>, keep: i64) -> bool {
    let oldest = campaigns
        .iter()
        .filter(|(id, _)| **id != keep)
        .min_by_key(|(_, e)| e.used)
        .map(|(id, _)| *id);
    oldest.is_some_and(|id| campaigns.remove(&id).is_some())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;
    use crate::domain::campaign::NewCampaign;
    use crate::gfn::Source;
    use crate::store::{OnTaken, ProposedValue, RoundDraft, RoundInsert};

    fn proposed(values: &[&str]) -> Vec<ProposedValue> {
        values
            .iter()
            .map(|v| ProposedValue {
                value: (*v).to_string(),
                proxy: None,
                source: Source::Uniform,
            })
            .collect()
    }

    async fn store_with_campaigns(n: usize) -> (Store, Vec<i64>) {
        let store = Store::connect("sqlite::memory:").await.expect("connects");
        store.migrate().await.expect("migrates");
        let mut ids = Vec::new();
        for i in 0..n {
            let body = serde_json::json!({
                "name": format!("c{i}"),
                "space": {"type": "grid", "dims": 2, "size": 4},
            });
            let campaign: NewCampaign = serde_json::from_value(body).expect("campaign body");
            let spec = campaign.validate().expect("valid campaign");
            ids.push(store.insert_campaign(&spec).await.expect("stored").id);
        }
        (store, ids)
    }

    /// A round of `batch` over `values` that commits what is free.
    fn draft(campaign_id: i64, batch: i64, values: &[ProposedValue]) -> RoundDraft<'_> {
        RoundDraft {
            campaign_id,
            key: None,
            model_version: 0,
            batch_size: batch,
            exhausted: false,
            values,
            on_taken: OnTaken::CommitShort,
        }
    }

    /// A draft that asks to roll back when a value was taken writes nothing: no round, no
    /// candidate, no round number used; the same draft without the taken value commits
    /// whole.
    #[tokio::test]
    async fn a_draft_whose_value_was_taken_rolls_back_when_asked() {
        let (store, ids) = store_with_campaigns(1).await;
        let first = proposed(&["[0,1]"]);
        store
            .insert_round(&draft(ids[0], 1, &first))
            .await
            .expect("round 1");
        let clashing = proposed(&["[2,2]", "[0,1]"]);
        let rolled_back = RoundDraft {
            on_taken: OnTaken::RollBack,
            ..draft(ids[0], 2, &clashing)
        };
        let outcome = store.insert_round(&rolled_back).await.expect("tried");
        assert_eq!(outcome, RoundInsert::Taken);
        let cache = SeenCache::default();
        let seen = cache.current(&store, ids[0]).await.expect("read");
        assert_eq!(seen.len(), 1, "nothing of the rolled-back round: {seen:?}");
        drop(seen);
        let free = proposed(&["[2,2]", "[3,1]"]);
        let whole = RoundDraft {
            on_taken: OnTaken::RollBack,
            ..draft(ids[0], 2, &free)
        };
        let RoundInsert::Created(id) = store.insert_round(&whole).await.expect("round 2") else {
            panic!("a draft of free values is created");
        };
        assert_eq!(store.round(id).await.expect("read back").number, 2);
        assert_eq!(
            store.round_candidates(id).await.expect("candidates").len(),
            2
        );
    }

    /// Rounds drawing at once get different places; a round drawn alone gets 0, also
    /// after others have finished. Each sees the values the others claim until they end.
    #[test]
    fn rounds_drawing_at_once_get_different_places() {
        let cache = SeenCache::default();
        let first = cache.drawing(1);
        let second = cache.drawing(1);
        let other_campaign = cache.drawing(2);
        assert_eq!((first.place, second.place, other_campaign.place), (0, 1, 0));
        drop(first);
        let third = cache.drawing(1);
        assert_eq!(third.place, 0, "the lowest free place");
        second.claim(vec!["[1,2]".into()]);
        third.claim(vec!["[3,4]".into()]);
        let others: Vec<String> = third.claimed_by_others().into_iter().collect();
        assert_eq!(others, ["[1,2]"], "another round's values, not its own");
        assert!(other_campaign.claimed_by_others().is_empty());
        drop(second);
        assert!(
            third.claimed_by_others().is_empty(),
            "given back with its place"
        );
        drop((third, other_campaign));
        assert_eq!(cache.drawing(1).place, 0);
        assert!(cache.drawing.lock().expect("lock").is_empty());
    }

    /// A round after another sees what the first stored, and only the campaign's own values.
    #[tokio::test]
    async fn values_stored_after_a_read_are_seen_by_the_next_one() {
        let (store, ids) = store_with_campaigns(2).await;
        let cache = SeenCache::default();
        store
            .insert_round(&draft(ids[0], 2, &proposed(&["[0,1]", "[1,1]"])))
            .await
            .expect("round 1");
        store
            .insert_round(&draft(ids[1], 1, &proposed(&["[3,3]"])))
            .await
            .expect("the other campaign's round");
        {
            let first = cache.current(&store, ids[0]).await.expect("read");
            assert_eq!(first.len(), 2);
            assert!(first.contains("[0,1]") && first.contains("[1,1]"));
            assert!(!first.contains("[3,3]"), "another campaign's value");
        }
        store
            .insert_round(&draft(ids[0], 2, &proposed(&["[2,2]", "[0,1]"])))
            .await
            .expect("round 2");
        let second = cache.current(&store, ids[0]).await.expect("read again");
        assert_eq!(second.len(), 3, "the repeated value was not stored twice");
        assert!(second.contains("[2,2]"));
        assert!(!second.contains("[3,3]"));
    }

    /// Beyond the limit the least recently used campaign is dropped, and read again in full
    /// when it comes back.
    #[tokio::test]
    async fn the_least_recently_used_campaign_is_dropped_and_read_again() {
        let (store, ids) = store_with_campaigns(CACHED_CAMPAIGNS + 1).await;
        store
            .insert_round(&draft(ids[0], 1, &proposed(&["[1,2]"])))
            .await
            .expect("round");
        let cache = SeenCache::default();
        for &id in &ids {
            drop(cache.current(&store, id).await.expect("read"));
        }
        assert_eq!(cache.cached_campaigns(), CACHED_CAMPAIGNS);
        let oldest = cache.lock().contains_key(&ids[0]);
        assert!(!oldest, "the first campaign read was the one dropped");
        let again = cache.current(&store, ids[0]).await.expect("read again");
        assert!(again.contains("[1,2]"));
        assert!(!cache.lock().contains_key(&ids[1]));
    }

    /// Large campaigns cannot add up without bound: beyond the total, the least recently
    /// used others go, while the one drawing stays however large it is.
    #[tokio::test]
    async fn the_total_of_values_cached_is_bounded() {
        let (store, ids) = store_with_campaigns(3).await;
        for (i, &id) in ids.iter().enumerate() {
            let values: Vec<String> = (0..3).map(|j| format!("[{i},{j}]")).collect();
            let texts: Vec<&str> = values.iter().map(String::as_str).collect();
            store
                .insert_round(&draft(id, 3, &proposed(&texts)))
                .await
                .expect("round");
        }
        let cache = SeenCache {
            max_values: 5,
            ..SeenCache::default()
        };
        drop(cache.current(&store, ids[0]).await.expect("read"));
        assert_eq!(cache.cached_campaigns(), 1);
        drop(cache.current(&store, ids[1]).await.expect("read"));
        assert_eq!(cache.cached_campaigns(), 1, "3 + 3 values are over 5");
        assert!(
            cache.lock().contains_key(&ids[1]),
            "the campaign drawing stays"
        );
        let tiny = SeenCache {
            max_values: 1,
            ..SeenCache::default()
        };
        let alone = tiny.current(&store, ids[2]).await.expect("read");
        assert_eq!(
            alone.len(),
            3,
            "larger than the bound, still whole while it draws"
        );
    }
}
