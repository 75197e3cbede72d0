//! An alphabet written without a separator, seen as a code: a value is its tokens' texts run
//! together, so it reads back only if no two different token sequences spell the same text,
//! that is if the alphabet is a uniquely decodable code.
//!
//! [`TokenCode::collision`] decides that with the Sardinas–Patterson test and, when the
//! alphabet is not uniquely decodable, names two token sequences that spell the same text.
//! [`TokenCode::decode`] reads a text back exactly. A left-to-right greedy split is not
//! enough even for uniquely decodable codes: with `a`, `ab` and `bb`, greedy reads `abb` as
//! `ab` and is then stuck, but the text is `a` + `bb`.
//!
//! Both walk a compressed trie of the tokens' bytes, which has at most two nodes per token
//! however long the tokens are. Token boundaries are char boundaries, so walking bytes finds
//! the same tokens as walking chars.

use std::collections::HashSet;

/// A trie node. It stands for the first `depth` bytes of token `spelled_by`; the edge from
/// its parent holds that token's bytes `start..depth`.
#[derive(Debug, Clone)]
struct TrieNode {
    spelled_by: u16,
    start: usize,
    depth: usize,
    /// Children by the first byte of their edge, sorted for binary search.
    children: Vec<(u8, usize)>,
    /// The token that is exactly this node's string.
    token: Option<u16>,
    /// Every token that starts with this node's string, itself included, in alphabet order.
    extensions: Vec<u16>,
}

/// The tokens of an alphabet in a trie, for the unique-decodability test and for decoding.
#[derive(Debug, Clone)]
pub(super) struct TokenCode {
    /// Node 0 is the root, the empty string.
    nodes: Vec<TrieNode>,
    /// The tokens, indexed like the alphabet.
    tokens: Vec<String>,
}

/// Two different token sequences (their first tokens differ) that spell the same text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Collision {
    pub first: Vec<u16>,
    pub second: Vec<u16>,
}

/// A text that is not a run of tokens. `position` is the end, in chars, of its longest
/// prefix that is one: where decoding gets stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Undecodable {
    pub position: usize,
}

/// How the Sardinas–Patterson test first reached a dangling suffix `w` from the suffix it
/// expanded (`s`); with the steps before it this rebuilds two token sequences that differ in
/// their first token and satisfy `first + w = second` as text.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// `shorter + w = longer` for two different tokens.
    Start { shorter: u16, longer: u16 },
    /// `token + w = s`: the parent suffix covers a whole token and `w` is left over.
    Consumed(u16),
    /// `s + w = token`: a token runs past the end of the parent suffix by `w`.
    Overran(u16),
}

/// A dangling suffix, the bytes of token `token` from `start` on, with the step that first
/// reached it.
#[derive(Debug)]
struct Dangling {
    token: u16,
    start: usize,
    /// Index of the suffix it was reached from; `None` for a [`Step::Start`].
    parent: Option<usize>,
    step: Step,
}

/// The dangling suffixes met so far, in the order met, each once.
struct DanglingSuffixes<'a> {
    tokens: &'a [String],
    found: Vec<Dangling>,
    met: HashSet<&'a [u8]>,
}

impl<'a> DanglingSuffixes<'a> {
    fn suffix(&self, token: u16, start: usize) -> &'a [u8] {
        let tokens: &'a [String] = self.tokens;
        tokens
            .get(token as usize)
            .and_then(|t| t.as_bytes().get(start..))
            .unwrap_or_default()
    }

    /// Records the suffix of `token` from byte `start` unless it is empty or was met before.
    fn add(&mut self, token: u16, start: usize, parent: Option<usize>, step: Step) {
        let suffix = self.suffix(token, start);
        if !suffix.is_empty() && self.met.insert(suffix) {
            self.found.push(Dangling {
                token,
                start,
                parent,
                step,
            });
        }
    }
}

impl TokenCode {
    /// Builds the trie of `alphabet`. The tokens are expected distinct and non-empty (the
    /// caller checks that) and at most `u16::MAX + 1` of them.
    pub(super) fn new(alphabet: &[String]) -> Self {
        let mut code = Self {
            nodes: Vec::with_capacity(2 * alphabet.len() + 1),
            tokens: alphabet.to_vec(),
        };
        code.push_node(0, 0, 0);
        for (index, token) in alphabet.iter().enumerate() {
            code.insert(index as u16, token.as_bytes());
        }
        code
    }

    fn insert(&mut self, index: u16, bytes: &[u8]) {
        let mut node = 0;
        loop {
            self.nodes[node].extensions.push(index);
            let depth = self.nodes[node].depth;
            let Some(&byte) = bytes.get(depth) else {
                // A duplicate token keeps the first index; the caller refuses duplicates.
                self.nodes[node].token.get_or_insert(index);
                return;
            };
            let at = match self.nodes[node]
                .children
                .binary_search_by_key(&byte, |&(b, _)| b)
            {
                Ok(at) => at,
                Err(at) => {
                    let leaf = self.push_node(index, depth, bytes.len());
                    self.nodes[leaf].token = Some(index);
                    self.nodes[leaf].extensions.push(index);
                    self.nodes[node].children.insert(at, (byte, leaf));
                    return;
                }
            };
            let child = self.nodes[node].children[at].1;
            let edge = self.edge(child);
            let common = edge
                .iter()
                .zip(&bytes[depth..])
                .take_while(|(a, b)| a == b)
                .count();
            let Some(&parting) = edge.get(common) else {
                node = child;
                continue;
            };
            // The token leaves the edge or ends inside it: split the edge where they part.
            let split = depth + common;
            let middle = self.push_node(self.nodes[child].spelled_by, depth, split);
            self.nodes[middle].children.push((parting, child));
            self.nodes[middle].extensions = self.nodes[child].extensions.clone();
            self.nodes[child].start = split;
            self.nodes[node].children[at].1 = middle;
            node = middle;
        }
    }

    fn push_node(&mut self, spelled_by: u16, start: usize, depth: usize) -> usize {
        self.nodes.push(TrieNode {
            spelled_by,
            start,
            depth,
            children: Vec::new(),
            token: None,
            extensions: Vec::new(),
        });
        self.nodes.len() - 1
    }

    /// The bytes on the edge into `node` from its parent.
    fn edge(&self, node: usize) -> &[u8] {
        let n = &self.nodes[node];
        self.tokens
            .get(n.spelled_by as usize)
            .and_then(|t| t.as_bytes().get(n.start..n.depth))
            .unwrap_or_default()
    }

    /// Follows `text` down from the root. Calls `on_token(len, token)` for each token that
    /// is a prefix of `text` (`text` itself included), shortest first, `len` in bytes; returns
    /// the node of the shortest string that starts with `text`, or `None` when no token
    /// starts with `text`.
    fn walk(&self, text: &[u8], mut on_token: impl FnMut(usize, u16)) -> Option<usize> {
        let mut node = 0;
        loop {
            let depth = self.nodes[node].depth;
            let (Some(&byte), Some(rest)) = (text.get(depth), text.get(depth..)) else {
                return Some(node);
            };
            let children = &self.nodes[node].children;
            let at = children.binary_search_by_key(&byte, |&(b, _)| b).ok()?;
            let child = children[at].1;
            let edge = self.edge(child);
            if rest.len() < edge.len() {
                return edge.starts_with(rest).then_some(child);
            }
            if !rest.starts_with(edge) {
                return None;
            }
            node = child;
            if let Some(token) = self.nodes[node].token {
                on_token(self.nodes[node].depth, token);
            }
        }
    }

    /// Some token that is a proper prefix of another, and that other, if there is one.
    pub(super) fn prefix_pair(&self) -> Option<(u16, u16)> {
        self.nodes.iter().find_map(|n| {
            let shorter = n.token?;
            let longer = n.extensions.iter().find(|&&t| t != shorter)?;
            Some((shorter, *longer))
        })
    }

    /// `None` when the tokens form a uniquely decodable code, else two token sequences that
    /// spell the same text.
    ///
    /// The Sardinas–Patterson test: `S1` holds the dangling suffixes `w` with `a + w = b` for
    /// tokens `a != b`; `S(i+1)` those with `s + w` a token or `token + w = s` for `s` in
    /// `S(i)`; the code is uniquely decodable iff no `S(i)` contains a token. Only the union
    /// of the `S(i)` matters, so each suffix is expanded once, breadth first, and the test
    /// ends when no new suffix appears.
    ///
    /// Every dangling suffix is a suffix of a token, met at most once; expanding one walks
    /// the trie along it and lists the tokens that extend it, and each token is listed by at
    /// most as many suffixes as it has bytes. So the cost is at most the alphabet's bytes
    /// times its longest token's, and a prefix-free alphabet (no `S1`) costs one walk per
    /// token.
    pub(super) fn collision(&self) -> Option<Collision> {
        let mut dangling = DanglingSuffixes {
            tokens: &self.tokens,
            found: Vec::new(),
            met: HashSet::new(),
        };
        for (shorter, token) in self.tokens.iter().enumerate() {
            let Some(node) = self.walk(token.as_bytes(), |_, _| {}) else {
                continue;
            };
            for &longer in &self.nodes[node].extensions {
                let shorter = shorter as u16;
                dangling.add(longer, token.len(), None, Step::Start { shorter, longer });
            }
        }
        let mut prefixes: Vec<(usize, u16)> = Vec::new();
        let mut next = 0;
        while let Some(&Dangling { token, start, .. }) = dangling.found.get(next) {
            let suffix = dangling.suffix(token, start);
            prefixes.clear();
            let extended = self.walk(suffix, |len, c| prefixes.push((len, c)));
            for &(len, c) in &prefixes {
                if len == suffix.len() {
                    return Some(witness(&dangling.found, next, c));
                }
                dangling.add(token, start + len, Some(next), Step::Consumed(c));
            }
            // `suffix` itself is not a token (that returned above), so every token that
            // starts with it is longer.
            if let Some(n) = extended {
                for &c in &self.nodes[n].extensions {
                    dangling.add(c, suffix.len(), Some(next), Step::Overran(c));
                }
            }
            next += 1;
        }
        None
    }

    /// Splits `text` into tokens: the only way when the code is uniquely decodable, the
    /// first found otherwise.
    ///
    /// Marks, left to right, every position that a run of tokens reaches from the start
    /// (each reached position walks the trie for the tokens that begin there, at most the
    /// longest token's length), then follows the marks back from the end.
    pub(super) fn decode(&self, text: &str) -> Result<Vec<u16>, Undecodable> {
        let bytes = text.as_bytes();
        // reached[end]: a token that ends at byte `end` on a run of tokens from the start.
        let mut reached: Vec<Option<u16>> = vec![None; bytes.len() + 1];
        let mut furthest = 0;
        for start in 0..bytes.len() {
            if start > 0 && reached[start].is_none() {
                continue;
            }
            furthest = start;
            self.walk(&bytes[start..], |len, token| {
                reached[start + len].get_or_insert(token);
            });
        }
        // Token ends are char boundaries: count the bytes that start a char.
        let stuck = Undecodable {
            position: bytes[..furthest]
                .iter()
                .filter(|&&b| b & 0xC0 != 0x80)
                .count(),
        };
        let mut tokens = Vec::new();
        let mut end = bytes.len();
        while end > 0 {
            let token = reached[end].ok_or(stuck)?;
            tokens.push(token);
            let len = self.tokens.get(token as usize).map_or(0, String::len);
            end = end.checked_sub(len).filter(|_| len > 0).ok_or(stuck)?;
        }
        tokens.reverse();
        Ok(tokens)
    }
}

/// The two sequences behind dangling suffix `at`, which is the token `token`.
fn witness(found: &[Dangling], at: usize, token: u16) -> Collision {
    let mut steps = Vec::new();
    let mut cursor = Some(at);
    while let Some(i) = cursor {
        steps.push(found[i].step);
        cursor = found[i].parent;
    }
    // Invariant: `first + w = second` as text for the suffix `w` reached so far.
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for step in steps.into_iter().rev() {
        match step {
            Step::Start { shorter, longer } => {
                first = vec![shorter];
                second = vec![longer];
            }
            // first + c + w = first + s = second.
            Step::Consumed(c) => first.push(c),
            // first + c = first + s + w = second + w: the roles swap.
            Step::Overran(c) => {
                first.push(c);
                std::mem::swap(&mut first, &mut second);
            }
        }
    }
    // The last suffix is `token`: first + token = second.
    first.push(token);
    Collision { first, second }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn build(tokens: &[&str]) -> (Vec<String>, TokenCode) {
        let alphabet: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
        let code = TokenCode::new(&alphabet);
        (alphabet, code)
    }

    fn spell(alphabet: &[String], tokens: &[u16]) -> String {
        tokens
            .iter()
            .map(|&t| alphabet[t as usize].as_str())
            .collect()
    }

    /// Two different sequences of at most `max_tokens` tokens that spell the same text, by
    /// listing them all.
    fn brute_force_collision(
        alphabet: &[String],
        max_tokens: usize,
    ) -> Option<(Vec<u16>, Vec<u16>)> {
        let mut spelled: HashMap<String, Vec<u16>> = HashMap::new();
        let mut layer: Vec<Vec<u16>> = vec![Vec::new()];
        for _ in 0..max_tokens {
            let mut longer = Vec::new();
            for seq in &layer {
                for t in 0..alphabet.len() as u16 {
                    let mut next = seq.clone();
                    next.push(t);
                    let text = spell(alphabet, &next);
                    if let Some(other) = spelled.get(&text) {
                        return Some((other.clone(), next));
                    }
                    spelled.insert(text, next.clone());
                    longer.push(next);
                }
            }
            layer = longer;
        }
        None
    }

    fn assert_collides(tokens: &[&str]) -> Collision {
        let (alphabet, code) = build(tokens);
        let c = code.collision().expect("not uniquely decodable");
        assert_ne!(c.first, c.second);
        assert_ne!(c.first[0], c.second[0]);
        assert_eq!(spell(&alphabet, &c.first), spell(&alphabet, &c.second));
        c
    }

    #[test]
    fn token_code_names_the_collision_of_a_ab_b() {
        let c = assert_collides(&["a", "ab", "b"]);
        assert_eq!(
            c,
            Collision {
                first: vec![0, 2],
                second: vec![1]
            }
        );
    }

    #[test]
    fn token_code_finds_collisions_that_need_several_steps() {
        // S1 = {b}, S2 = {c} from b + c = bc, S3 = {d} from c + d = cd... until d is a token:
        // a + bc + d = ab + cd.
        assert_collides(&["a", "ab", "bc", "cd", "d"]);
        // The textbook example: a·bbcde·bad = abb·c·deb·ad.
        assert_collides(&["a", "c", "ad", "abb", "bad", "deb", "bbcde"]);
        assert_collides(&["0", "01", "10"]);
        assert_collides(&["ab", "a", "ba", "b"]);
    }

    #[test]
    fn token_code_accepts_uniquely_decodable_codes_that_are_not_prefix_free() {
        for tokens in [
            &["B", "Br", "C", "Cl", "N", "O"][..],
            &["a", "ab", "bb"],
            // A suffix code: reversed, it is prefix free.
            &["0", "01", "011", "0111"],
            &["1", "10", "100"],
        ] {
            let (alphabet, code) = build(tokens);
            assert_eq!(code.collision(), None, "{tokens:?}");
            assert_eq!(brute_force_collision(&alphabet, 5), None, "{tokens:?}");
        }
    }

    #[test]
    fn token_code_decodes_where_greedy_longest_match_fails() {
        let (_, code) = build(&["a", "ab", "bb"]);
        assert_eq!(code.decode("abb"), Ok(vec![0, 2]));
        assert_eq!(code.decode("ab"), Ok(vec![1]));
        assert_eq!(code.decode("abbb"), Ok(vec![1, 2]));
        assert_eq!(code.decode("abbbb"), Ok(vec![0, 2, 2]));
        assert_eq!(code.decode(""), Ok(vec![]));
    }

    #[test]
    fn token_code_decode_names_the_end_of_the_longest_decodable_prefix() {
        let (_, code) = build(&["a", "ab", "bb"]);
        // "ab" and "a" are runs of tokens, "abb" is not reached by "ab" + "b".
        assert_eq!(code.decode("abx"), Err(Undecodable { position: 2 }));
        assert_eq!(code.decode("b"), Err(Undecodable { position: 0 }));
        // a·bb reaches 3 and ab·bb reaches 4, the furthest.
        assert_eq!(code.decode("abbbx"), Err(Undecodable { position: 4 }));
        assert_eq!(code.decode("abbbbb"), Ok(vec![1, 2, 2]));
        assert_eq!(code.decode("abbbbbb"), Ok(vec![0, 2, 2, 2]));
        let (_, code) = build(&["B", "Br", "C", "Cl"]);
        // Chars, not bytes: "é" is two bytes.
        assert_eq!(code.decode("BréCl"), Err(Undecodable { position: 2 }));
    }

    #[test]
    fn token_code_handles_a_large_alphabet_of_nested_prefixes() {
        // x y^a z^b: many tokens are prefixes of others, yet every text splits before each
        // x. 1024 tokens of up to 63 chars.
        let tokens: Vec<String> = (0..1024)
            .map(|k| format!("x{}{}", "y".repeat(k / 32), "z".repeat(k % 32)))
            .collect();
        let code = TokenCode::new(&tokens);
        assert_eq!(code.prefix_pair(), Some((0, 1)));
        assert_eq!(code.collision(), None);
        let x: Vec<u16> = (0..512).map(|i| (i * 7 % 1024) as u16).collect();
        assert_eq!(code.decode(&spell(&tokens, &x)), Ok(x));
        // With "z" too, x + z = xz.
        let mut more = tokens;
        more.push("z".into());
        let c = TokenCode::new(&more).collision().expect("x + z = xz");
        assert_eq!(spell(&more, &c.first), spell(&more, &c.second));
    }

    #[test]
    fn token_code_handles_many_dangling_suffixes() {
        // a and a^50 b <10 bits>: every a^k b <bits> is a dangling suffix (a is consumed one
        // at a time), about 50 000 of them, and the code is uniquely decodable.
        let mut tokens = vec!["a".to_string()];
        tokens.extend((1..1024).map(|i| format!("{}b{i:010b}", "a".repeat(50))));
        let code = TokenCode::new(&tokens);
        assert_eq!(code.collision(), None);
        let x: Vec<u16> = (0..512).map(|i| (i * 5 % 1024) as u16).collect();
        assert_eq!(code.decode(&spell(&tokens, &x)), Ok(x));
    }

    #[test]
    fn token_code_prefix_pair_is_none_for_prefix_free_alphabets() {
        assert_eq!(build(&["A", "C", "G", "T"]).1.prefix_pair(), None);
        assert_eq!(build(&["ab", "ba", "aab"]).1.prefix_pair(), None);
        assert_eq!(build(&["ab", "ba", "a"]).1.prefix_pair(), Some((2, 0)));
    }

    /// Small alphabets over two letters: many are not uniquely decodable.
    fn alphabet_strategy() -> impl Strategy<Value = Vec<String>> {
        let token = prop::collection::vec(prop::sample::select(vec!['a', 'b']), 1..=4)
            .prop_map(|cs| cs.into_iter().collect::<String>());
        prop::collection::btree_set(token, 2..=5).prop_map(|set| set.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn token_code_collision_agrees_with_listing_short_sequences(
            alphabet in alphabet_strategy(),
        ) {
            let code = TokenCode::new(&alphabet);
            match code.collision() {
                Some(c) => {
                    prop_assert_ne!(c.first[0], c.second[0]);
                    prop_assert_eq!(spell(&alphabet, &c.first), spell(&alphabet, &c.second));
                }
                None => prop_assert_eq!(brute_force_collision(&alphabet, 6), None),
            }
        }

        #[test]
        fn token_code_decodes_every_sequence_of_a_uniquely_decodable_code(
            alphabet in alphabet_strategy(),
            picks in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let code = TokenCode::new(&alphabet);
            prop_assume!(code.collision().is_none());
            let x: Vec<u16> = picks.iter().map(|i| i.index(alphabet.len()) as u16).collect();
            prop_assert_eq!(code.decode(&spell(&alphabet, &x)), Ok(x));
        }
    }
}
