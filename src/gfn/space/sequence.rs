//! The `sequence` space: strings of alphabet tokens, built left to right by appending one
//! token at a time, that may stop once they reach `min_length`. A tree: every state has one
//! parent, the state without its last token.
//!
//! This module owns the spec validation that keeps the JSON value unambiguous: with an empty
//! separator the alphabet must be a uniquely decodable code (no two different token
//! sequences spell the same text, so [`Space::parse_value`] reads every joined value back
//! into its tokens; see [`TokenCode`]), and with a separator no token may produce a
//! separator match before its end when followed by the separator (so splitting on the
//! separator finds exactly the joins).

use super::token_code::{Collision, TokenCode};
use super::{enumerate_by_depth, log_sum_exp, InvalidAction, Space, SpecError, State, ValueError};
use rand::{Rng, RngCore};
use serde_json::Value;
use std::collections::HashMap;

/// Longest excerpt of client text echoed back in a [`ValueError::UnknownToken`], in chars.
const EXCERPT_CHARS: usize = 16;

/// Most tokens of each sequence, and most chars of their text, that a refused alphabet's
/// error names; a longer collision is shortened with an ellipsis.
const WITNESS_TOKENS: usize = 32;
const WITNESS_CHARS: usize = 64;

/// Most chars of a token when the separator is empty and some token is a prefix of another.
/// The unique-decodability test then costs up to the alphabet's length times its longest
/// token's, and decoding a value up to the value's length times the longest token's; the cap
/// keeps both small. Prefix-free alphabets decode token by token and need no cap.
const MAX_TOKEN_CHARS_WITH_PREFIXES: usize = 64;

/// Sequences of `min_length..=max_length` tokens from `alphabet` (2..=1024
/// distinct non-empty tokens, lengths 1..=512).
///
/// A state is the token indices in order. Forward action `i < alphabet.len()` appends token
/// `i`; the stop action is `alphabet.len()`.
#[derive(Debug, Clone)]
pub struct SequenceSpace {
    alphabet: Vec<String>,
    min_length: usize,
    max_length: usize,
    separator: String,
    /// Token text to index, for splitting on the separator.
    index: HashMap<String, u16>,
    /// The alphabet as a code, for decoding values without a separator; `None` with one.
    code: Option<TokenCode>,
}

impl SequenceSpace {
    /// Validates the bounds of the protocol and that values split back into tokens unambiguously.
    ///
    /// Errors name the field: `alphabet` (size, empty or duplicate tokens; when `separator`
    /// is empty, not uniquely decodable, naming two token sequences that spell the same text,
    /// or a token over 64 chars while one token is a prefix of another), `separator` (a token
    /// that contains the separator or overlaps it at a join), `max_length` (outside
    /// 1..=512), `min_length` (outside 1..=max_length).
    pub fn new(
        alphabet: Vec<String>,
        min_length: usize,
        max_length: usize,
        separator: String,
    ) -> Result<Self, SpecError> {
        check_symbols(&alphabet, &separator)?;
        let code = if separator.is_empty() {
            Some(joined_code(&alphabet)?)
        } else {
            check_separator(&alphabet, &separator)?;
            None
        };
        check_lengths(min_length, max_length)?;
        let index = alphabet
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u16))
            .collect();
        Ok(Self {
            alphabet,
            min_length,
            max_length,
            separator,
            index,
            code,
        })
    }

    /// The tokens; token `i` is appended by forward action `i`.
    pub fn alphabet(&self) -> &[String] {
        &self.alphabet
    }

    /// Fewest tokens of a terminal state (at least 1).
    pub fn min_length(&self) -> usize {
        self.min_length
    }

    /// Most tokens of any state (at most 512).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The text between tokens in values; may be empty.
    pub fn separator(&self) -> &str {
        &self.separator
    }

    fn n_tokens(&self) -> usize {
        self.alphabet.len()
    }

    fn invalid(s: &State, a: usize) -> InvalidAction {
        InvalidAction {
            action: a,
            state: s.clone(),
        }
    }

    /// Decodes `text` written without a separator. An error names the char position where
    /// decoding gets stuck (the end of the longest prefix that is a run of tokens) and the
    /// text from there.
    fn decode(code: &TokenCode, text: &str) -> Result<Vec<u16>, ValueError> {
        code.decode(text).map_err(|stuck| ValueError::UnknownToken {
            position: stuck.position,
            found: text
                .chars()
                .skip(stuck.position)
                .take(EXCERPT_CHARS)
                .collect(),
        })
    }

    /// Splits `text` on the separator; every piece must be a token.
    fn split_on_separator(&self, text: &str) -> Result<Vec<u16>, ValueError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        text.split(self.separator.as_str())
            .enumerate()
            .map(|(position, piece)| {
                self.index
                    .get(piece)
                    .copied()
                    .ok_or_else(|| ValueError::UnknownToken {
                        position,
                        found: excerpt(piece),
                    })
            })
            .collect()
    }
}

/// Tokens and separator: 2..=1024 distinct non-empty tokens, none and no separator with
/// U+0000 (PostgreSQL text cannot hold it) or over [`super::MAX_SYMBOL_BYTES`] bytes.
fn check_symbols(alphabet: &[String], separator: &str) -> Result<(), SpecError> {
    if !(2..=1024).contains(&alphabet.len()) {
        return Err(SpecError::new(
            "alphabet",
            format!("{} tokens is outside 2..=1024", alphabet.len()),
        ));
    }
    if let Some(i) = alphabet.iter().position(|t| t.is_empty()) {
        return Err(SpecError::new("alphabet", format!("token {i} is empty")));
    }
    // Values are stored as text, and PostgreSQL text cannot hold U+0000.
    if let Some(i) = alphabet.iter().position(|t| t.contains('\0')) {
        return Err(SpecError::new(
            "alphabet",
            format!("token {i} contains U+0000"),
        ));
    }
    if separator.contains('\0') {
        return Err(SpecError::new("separator", "contains U+0000"));
    }
    if let Some(i) = alphabet
        .iter()
        .position(|t| t.len() > super::MAX_SYMBOL_BYTES)
    {
        return Err(SpecError::new(
            "alphabet",
            format!(
                "token {i} has {} bytes; at most {} are allowed",
                alphabet[i].len(),
                super::MAX_SYMBOL_BYTES
            ),
        ));
    }
    if separator.len() > super::MAX_SYMBOL_BYTES {
        return Err(SpecError::new(
            "separator",
            format!(
                "has {} bytes; at most {} are allowed",
                separator.len(),
                super::MAX_SYMBOL_BYTES
            ),
        ));
    }
    let mut sorted: Vec<&str> = alphabet.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    for pair in sorted.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a == b {
            return Err(SpecError::new(
                "alphabet",
                format!("token {a:?} appears twice"),
            ));
        }
    }
    Ok(())
}

/// The code of an alphabet whose tokens are joined with no separator: refused when values
/// could decode two ways, or when prefix tokens are too long for the exact decoder.
fn joined_code(alphabet: &[String]) -> Result<TokenCode, SpecError> {
    let code = TokenCode::new(alphabet);
    if let Some((shorter, longer)) = code.prefix_pair() {
        let long = alphabet.iter().enumerate().find_map(|(i, t)| {
            let chars = t.chars().count();
            (chars > MAX_TOKEN_CHARS_WITH_PREFIXES).then_some((i, chars))
        });
        if let Some((i, chars)) = long {
            return Err(SpecError::new(
                "alphabet",
                format!(
                    "token {i} has {chars} chars; without a separator, when a token is \
                     a prefix of another (here token {shorter} of token {longer}), \
                     tokens may have at most {MAX_TOKEN_CHARS_WITH_PREFIXES} chars"
                ),
            ));
        }
    }
    if let Some(collision) = code.collision() {
        return Err(SpecError::new(
            "alphabet",
            describe_collision(alphabet, &collision),
        ));
    }
    Ok(code)
}

/// With a separator, splitting `token + separator + rest` must find the separator right
/// after the token; a match that starts earlier (inside the token, or overlapping the join
/// as with token "a" and separator "aa") would split elsewhere.
fn check_separator(alphabet: &[String], separator: &str) -> Result<(), SpecError> {
    for token in alphabet {
        let joined = format!("{token}{separator}");
        if joined.find(separator) != Some(token.len()) {
            return Err(SpecError::new(
                "separator",
                format!(
                    "separator {separator:?} occurs inside or across the end of token \
                     {token:?}, so values split ambiguously"
                ),
            ));
        }
    }
    Ok(())
}

/// `max_length` in 1..=512, `min_length` in 1..=max_length.
fn check_lengths(min_length: usize, max_length: usize) -> Result<(), SpecError> {
    if !(1..=512).contains(&max_length) {
        return Err(SpecError::new(
            "max_length",
            format!("{max_length} is outside 1..=512"),
        ));
    }
    if !(1..=max_length).contains(&min_length) {
        return Err(SpecError::new(
            "min_length",
            format!("{min_length} is outside 1..={max_length} (max_length)"),
        ));
    }
    Ok(())
}

/// The first [`EXCERPT_CHARS`] chars of `text`, so errors stay short.
fn excerpt(text: &str) -> String {
    text.chars().take(EXCERPT_CHARS).collect()
}

/// Why an alphabet is refused without a separator: two token sequences and the text both
/// spell.
fn describe_collision(alphabet: &[String], collision: &Collision) -> String {
    let spelled: String = collision
        .first
        .iter()
        .filter_map(|&t| alphabet.get(t as usize))
        .map(String::as_str)
        .collect();
    let mut text: String = spelled.chars().take(WITNESS_CHARS).collect();
    if text.len() < spelled.len() {
        text.push('…');
    }
    format!(
        "tokens {} and {} both spell {text:?}, so values joined without a separator are \
         ambiguous",
        token_list(alphabet, &collision.first),
        token_list(alphabet, &collision.second),
    )
}

/// `["a", "b"]`, shortened to [`WITNESS_TOKENS`] tokens.
fn token_list(alphabet: &[String], tokens: &[u16]) -> String {
    let mut items: Vec<String> = tokens
        .iter()
        .take(WITNESS_TOKENS)
        .filter_map(|&t| alphabet.get(t as usize))
        .map(|t| format!("{t:?}"))
        .collect();
    if tokens.len() > WITNESS_TOKENS {
        items.push(format!("… ({} tokens in all)", tokens.len()));
    }
    format!("[{}]", items.join(", "))
}

/// Token-level edit distance (unit-cost insertions, deletions and substitutions).
fn levenshtein(x: &[u16], y: &[u16]) -> usize {
    let mut prev: Vec<usize> = (0..=y.len()).collect();
    let mut cur = vec![0; y.len() + 1];
    for (i, a) in x.iter().enumerate() {
        cur[0] = i + 1;
        for (j, b) in y.iter().enumerate() {
            let substitute = prev[j] + usize::from(a != b);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[y.len()]
}

/// Whether the token edit distance of `x` and `y` is at least `k`, in `O(len k)`: the length
/// difference is a lower bound, and otherwise only the cells within `k - 1` of the diagonal
/// are computed (a path through any other cell costs at least `k`), with every value capped
/// at `k` and a stop as soon as a whole row reaches it.
fn levenshtein_at_least(x: &[u16], y: &[u16], k: usize) -> bool {
    if k == 0 || x.len().abs_diff(y.len()) >= k {
        return true;
    }
    let band = k - 1;
    let n = y.len();
    // Cells never written hold `k`: they lie outside the band of every row so far.
    let mut prev = vec![k; n + 1];
    let mut cur = vec![k; n + 1];
    for (j, cell) in prev.iter_mut().enumerate().take(band.min(n) + 1) {
        *cell = j;
    }
    for (i, a) in x.iter().enumerate() {
        let row = i + 1;
        let lo = row.saturating_sub(band);
        let hi = (row + band).min(n);
        if lo > 0 {
            // Left of the band: at least `k` away from the diagonal.
            cur[lo - 1] = k;
        }
        let mut row_min = k;
        for j in lo..=hi {
            let value = if j == 0 {
                row
            } else {
                let substitute = prev[j - 1] + usize::from(*a != y[j - 1]);
                substitute.min(prev[j] + 1).min(cur[j - 1] + 1)
            }
            .min(k);
            cur[j] = value;
            row_min = row_min.min(value);
        }
        if row_min >= k {
            return true;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[n] >= k
}

impl Space for SequenceSpace {
    fn n_actions(&self) -> usize {
        self.n_tokens() + 1
    }

    fn initial(&self) -> State {
        State(Vec::new())
    }

    fn forward_mask(&self, s: &State, mask: &mut [bool]) {
        let len = s.0.len();
        let n = self.n_tokens();
        mask[..n].fill(len < self.max_length);
        mask[n] = len >= self.min_length;
    }

    fn step(&self, s: &State, a: usize) -> Result<State, InvalidAction> {
        if a >= self.n_tokens() || s.0.len() >= self.max_length {
            return Err(Self::invalid(s, a));
        }
        let mut c = Vec::with_capacity(s.0.len() + 1);
        c.extend_from_slice(&s.0);
        c.push(a as u16);
        Ok(State(c))
    }

    fn backward_mask(&self, s: &State, mask: &mut [bool]) {
        mask.fill(false);
        if let Some(m) = s.0.last().and_then(|&t| mask.get_mut(t as usize)) {
            *m = true;
        }
    }

    fn backward_step(&self, s: &State, a: usize) -> Result<State, InvalidAction> {
        match s.0.split_last() {
            Some((&last, rest)) if last as usize == a && a < self.n_tokens() => {
                Ok(State(rest.to_vec()))
            }
            _ => Err(Self::invalid(s, a)),
        }
    }

    fn parents(&self, s: &State) -> Vec<(State, usize)> {
        match s.0.split_last() {
            Some((&last, rest)) => vec![(State(rest.to_vec()), last as usize)],
            None => Vec::new(),
        }
    }

    fn can_stop(&self, s: &State) -> bool {
        s.0.len() >= self.min_length
    }

    fn depth(&self, s: &State) -> usize {
        s.0.len()
    }

    fn max_depth(&self) -> usize {
        self.max_length
    }

    fn encoding_dim(&self) -> usize {
        self.max_length * self.n_tokens()
    }

    /// One-hot per position: token `t` at position `p` sets `p * n_tokens + t`; positions
    /// past the end of `s` stay zero.
    fn encode_into(&self, s: &State, out: &mut [f32]) {
        let n = self.n_tokens();
        for (p, &t) in s.0.iter().enumerate() {
            out[p * n + t as usize] = 1.0;
        }
    }

    /// The tokens joined by the separator, as a JSON string.
    fn to_value(&self, x: &State) -> Value {
        let mut text = String::new();
        for (i, &t) in x.0.iter().enumerate() {
            if i > 0 {
                text.push_str(&self.separator);
            }
            text.push_str(&self.alphabet[t as usize]);
        }
        Value::String(text)
    }

    /// Accepts a JSON string. The position of an unknown token is its token index with a
    /// separator; without one it is the char offset where decoding gets stuck, the end of the
    /// longest prefix of the string that is a run of tokens.
    fn parse_value(&self, value: &Value) -> Result<State, ValueError> {
        let text = value.as_str().ok_or(ValueError::WrongType {
            expected: "a string",
        })?;
        let tokens = match &self.code {
            Some(code) => Self::decode(code, text)?,
            None => self.split_on_separator(text)?,
        };
        if !(self.min_length..=self.max_length).contains(&tokens.len()) {
            return Err(ValueError::Length {
                length: tokens.len(),
                min: self.min_length,
                max: self.max_length,
            });
        }
        Ok(State(tokens))
    }

    /// Hamming distance (differing positions) for equal lengths, else token Levenshtein.
    fn distance(&self, x: &State, y: &State) -> f64 {
        if x.0.len() == y.0.len() {
            x.0.iter().zip(&y.0).filter(|(a, b)| a != b).count() as f64
        } else {
            levenshtein(&x.0, &y.0) as f64
        }
    }

    fn distance_at_least(&self, x: &State, y: &State, d: f64) -> bool {
        // As `distance(x, y) >= d` answers: never for NaN, always for d <= 0.
        if d.is_nan() {
            return false;
        }
        if d <= 0.0 {
            return true;
        }
        if x.0.len() == y.0.len() {
            return self.distance(x, y) >= d;
        }
        // The distances are whole numbers: at least `d` is at least its ceiling.
        let k = d.ceil().min(usize::MAX as f64) as usize;
        levenshtein_at_least(&x.0, &y.0, k)
    }

    /// Substitutes one token (four times in five when a length change is also allowed),
    /// else inserts or deletes one at a random position.
    fn mutate(&self, x: &State, rng: &mut dyn RngCore) -> State {
        let n = self.n_tokens();
        let len = x.0.len();
        let can_insert = len < self.max_length;
        let can_delete = len > self.min_length;
        let mut tokens = x.0.clone();
        let resize = (can_insert || can_delete) && (len == 0 || rng.random_bool(0.2));
        if !resize {
            if len == 0 {
                return x.clone();
            }
            let at = rng.random_range(0..len);
            // A different token: draw among the other n - 1 and skip over the current one.
            let mut t = rng.random_range(0..n - 1) as u16;
            if t >= tokens[at] {
                t += 1;
            }
            tokens[at] = t;
        } else if can_insert && (!can_delete || rng.random_bool(0.5)) {
            let at = rng.random_range(0..=len);
            tokens.insert(at, rng.random_range(0..n) as u16);
        } else {
            tokens.remove(rng.random_range(0..len));
        }
        State(tokens)
    }

    /// One-point crossover: a prefix of `a` followed by `b` from the same position on, so
    /// that the child's length is that of `b`, or a prefix of `a` longer than `b`; both are
    /// within the bounds since the parents are.
    fn crossover(&self, a: &State, b: &State, rng: &mut dyn RngCore) -> State {
        let cut = rng.random_range(0..=a.0.len());
        let mut tokens = a.0[..cut].to_vec();
        if cut < b.0.len() {
            tokens.extend_from_slice(&b.0[cut..]);
        }
        State(tokens)
    }

    /// One substitution, insertion or deletion apart.
    /// Hamming and Levenshtein distances are at most the longest length.
    fn diameter(&self) -> f64 {
        self.max_length as f64
    }

    fn near_duplicate(&self, x: &State, y: &State) -> bool {
        !self.distance_at_least(x, y, 2.0)
    }

    fn is_tree(&self) -> bool {
        true
    }

    /// `sum_{l=0}^{max_length} n_tokens^l`, `None` past `u64::MAX`.
    fn n_states(&self) -> Option<u64> {
        let n = self.n_tokens() as u64;
        let mut term = 1u64;
        let mut total = 1u64;
        for _ in 0..self.max_length {
            term = term.checked_mul(n)?;
            total = total.checked_add(term)?;
        }
        Some(total)
    }

    /// `ln sum_{L=min_length}^{max_length} n_tokens^L`, summed in log space.
    fn log_n_terminals(&self) -> f64 {
        let ln_n = (self.n_tokens() as f64).ln();
        log_sum_exp((self.min_length..=self.max_length).map(move |l| l as f64 * ln_n))
    }

    fn enumerate(&self, limit: usize) -> Option<Vec<State>> {
        enumerate_by_depth(self, limit)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::grid::invariants;
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use serde_json::json;

    fn strings(tokens: &[&str]) -> Vec<String> {
        tokens.iter().map(|t| t.to_string()).collect()
    }

    fn space(tokens: &[&str], min: usize, max: usize, sep: &str) -> SequenceSpace {
        SequenceSpace::new(strings(tokens), min, max, sep.to_string()).unwrap()
    }

    fn spec_error(tokens: &[&str], min: usize, max: usize, sep: &str) -> SpecError {
        SequenceSpace::new(strings(tokens), min, max, sep.to_string()).unwrap_err()
    }

    #[test]
    fn sequence_new_rejects_alphabets_outside_2_to_1024_tokens() {
        assert_eq!(spec_error(&["a"], 1, 2, "").field, "alphabet");
        let many: Vec<String> = (0..1025).map(|i| format!("t{i},")).collect();
        let err = SequenceSpace::new(many, 1, 2, ",".into()).unwrap_err();
        assert_eq!(err.field, "alphabet");
        assert!(err.reason.contains("1025"), "{err}");
        let most: Vec<String> = (0..1024).map(|i| format!("t{i}")).collect();
        assert!(SequenceSpace::new(most, 1, 2, ",".into()).is_ok());
    }

    #[test]
    fn sequence_new_rejects_empty_and_duplicate_tokens() {
        let err = spec_error(&["a", ""], 1, 2, ",");
        assert_eq!(err.field, "alphabet");
        assert!(err.reason.contains("token 1 is empty"), "{err}");
        let err = spec_error(&["a", "b", "a"], 1, 2, ",");
        assert_eq!(err.field, "alphabet");
        assert!(err.reason.contains("\"a\" appears twice"), "{err}");
    }

    /// Elements as single-char and two-char symbols: B is a prefix of Br and C of Cl, yet
    /// every text splits one way only.
    const CHEMISTRY: [&str; 6] = ["B", "Br", "C", "Cl", "N", "O"];

    /// A SMILES-like alphabet without a separator: atoms, aromatic atoms, branches, bonds,
    /// ring closures and a bracket atom.
    const SMILES_LIKE: [&str; 15] = [
        "C", "c", "N", "n", "O", "o", "(", ")", "=", "#", "1", "2", "Cl", "Br", "[nH]",
    ];

    #[test]
    fn sequence_new_rejects_an_alphabet_that_is_not_uniquely_decodable_naming_two_spellings() {
        for tokens in [["a", "ab", "b"], ["b", "ab", "a"]] {
            let err = spec_error(&tokens, 1, 2, "");
            assert_eq!(err.field, "alphabet");
            assert!(
                err.reason
                    .contains(r#"tokens ["a", "b"] and ["ab"] both spell "ab""#),
                "{err}"
            );
        }
        // The collision need not involve a token and its sorted neighbour: a + ab = aab.
        let err = spec_error(&["ab", "aab", "a"], 1, 2, "");
        assert!(
            err.reason
                .contains(r#"tokens ["a", "ab"] and ["aab"] both spell "aab""#),
            "{err}"
        );
        // Nor be found in one step: a + bc + d = ab + cd.
        let err = spec_error(&["a", "ab", "bc", "cd", "d"], 1, 2, "");
        assert!(
            err.reason
                .contains(r#"tokens ["a", "bc", "d"] and ["ab", "cd"] both spell "abcd""#),
            "{err}"
        );
    }

    #[test]
    fn sequence_new_accepts_uniquely_decodable_alphabets_with_prefix_tokens() {
        for tokens in [&CHEMISTRY[..], &SMILES_LIKE, &["a", "ab", "bb"]] {
            let s = SequenceSpace::new(strings(tokens), 1, 8, String::new());
            assert!(s.is_ok(), "{tokens:?}: {s:?}");
        }
    }

    #[test]
    fn sequence_new_caps_token_chars_without_a_separator_only_when_a_token_is_a_prefix() {
        let long = "é".repeat(65);
        let err = spec_error(&["a", "ab", &long], 1, 2, "");
        assert_eq!(err.field, "alphabet");
        assert!(
            err.reason.contains("token 2 has 65 chars")
                && err.reason.contains("token 0 of token 1")
                && err.reason.contains("at most 64 chars"),
            "{err}"
        );
        // 64 chars are fine, and longer tokens are when no token is a prefix of another or
        // a separator splits the tokens.
        let most = "é".repeat(64);
        for (tokens, sep) in [
            (["a", "ab", most.as_str()], ""),
            (["a", "b", long.as_str()], ""),
            (["a", "ab", long.as_str()], ","),
        ] {
            let s = SequenceSpace::new(strings(&tokens), 1, 2, sep.to_string());
            assert!(s.is_ok(), "{s:?}");
        }
    }

    #[test]
    fn sequence_collision_message_shortens_long_sequences() {
        let alphabet = strings(&["a", "aa"]);
        let message = describe_collision(
            &alphabet,
            &Collision {
                first: vec![0; 80],
                second: vec![1; 40],
            },
        );
        let listed = |token: &str, n: usize| vec![format!("{token:?}"); n].join(", ");
        assert!(
            message.contains(&format!(
                "tokens [{}, … (80 tokens in all)] and [{}, … (40 tokens in all)] both spell \
                 \"{}…\"",
                listed("a", 32),
                listed("aa", 32),
                "a".repeat(64)
            )),
            "{message}"
        );
    }

    #[test]
    fn sequence_new_accepts_prefix_tokens_when_a_separator_splits_them() {
        let s = space(&["a", "ab", "b"], 1, 3, " ");
        let x = State(vec![0, 2, 1]);
        assert_eq!(s.to_value(&x), json!("a b ab"));
        assert_eq!(s.parse_value(&s.to_value(&x)), Ok(x));
    }

    #[test]
    fn sequence_new_rejects_tokens_containing_the_separator() {
        let err = spec_error(&["a,b", "c"], 1, 2, ",");
        assert_eq!(err.field, "separator");
        assert!(err.reason.contains("\"a,b\""), "{err}");
    }

    #[test]
    fn sequence_new_rejects_a_separator_that_overlaps_a_token_at_the_join() {
        // "a" + "aa" + "a" = "aaaa" would split into empty pieces.
        let err = spec_error(&["a", "b"], 1, 2, "aa");
        assert_eq!(err.field, "separator");
        assert!(err.reason.contains("\"a\""), "{err}");
        // "aba" + "bab" starts with "bab" at offset 1.
        assert_eq!(spec_error(&["aba", "c"], 1, 2, "bab").field, "separator");
        // A separator that only shares letters with the tokens is fine.
        assert!(SequenceSpace::new(strings(&["x", "y"]), 1, 2, "xy".into()).is_ok());
    }

    #[test]
    fn sequence_new_rejects_lengths_outside_bounds() {
        let ab = ["a", "b"];
        assert_eq!(spec_error(&ab, 1, 0, "").field, "max_length");
        assert_eq!(spec_error(&ab, 1, 513, "").field, "max_length");
        assert_eq!(spec_error(&ab, 0, 3, "").field, "min_length");
        let err = spec_error(&ab, 4, 3, "");
        assert_eq!(err.field, "min_length");
        assert!(err.reason.contains("1..=3"), "{err}");
        assert!(SequenceSpace::new(strings(&ab), 512, 512, String::new()).is_ok());
    }

    #[test]
    fn sequence_parse_splits_values_without_a_separator_into_tokens() {
        let s = space(&["A", "CG", "T", "日本"], 1, 5, "");
        assert_eq!(
            s.parse_value(&json!("ACG日本T")),
            Ok(State(vec![0, 1, 3, 2]))
        );
        let s = space(&CHEMISTRY, 1, 8, "");
        assert_eq!(
            s.parse_value(&json!("BrBCClCNO")),
            Ok(State(vec![1, 0, 2, 3, 2, 4, 5]))
        );
    }

    #[test]
    fn sequence_parse_decodes_where_greedy_longest_match_would_fail() {
        // Greedy takes "ab" and is left with "b", which is no token.
        let s = space(&["a", "ab", "bb"], 1, 8, "");
        assert_eq!(s.parse_value(&json!("abb")), Ok(State(vec![0, 2])));
        assert_eq!(s.to_value(&State(vec![0, 2])), json!("abb"));
        // "a" and "ab" both start a run of tokens; "ab" + "bb" gets furthest, to 4.
        assert_eq!(
            s.parse_value(&json!("abbbx")),
            Err(ValueError::UnknownToken {
                position: 4,
                found: "x".into()
            })
        );
    }

    #[test]
    fn sequence_parse_rejects_unknown_token_naming_its_char_position() {
        let s = space(&["é", "ab", "c"], 1, 8, "");
        // "é" is 2 bytes: the position counts chars, not bytes.
        assert_eq!(
            s.parse_value(&json!("éabéxc")),
            Err(ValueError::UnknownToken {
                position: 4,
                found: "xc".into()
            })
        );
        // A partial multi-char token is unknown too.
        assert_eq!(
            s.parse_value(&json!("éa")),
            Err(ValueError::UnknownToken {
                position: 1,
                found: "a".into()
            })
        );
    }

    #[test]
    fn sequence_parse_rejects_unknown_token_naming_its_index_with_a_separator() {
        let s = space(&["ala", "gly"], 1, 8, "-");
        assert_eq!(
            s.parse_value(&json!("ala-gly-xyz-ala")),
            Err(ValueError::UnknownToken {
                position: 2,
                found: "xyz".into()
            })
        );
        // Doubled and trailing separators leave empty pieces, which are not tokens.
        assert_eq!(
            s.parse_value(&json!("ala--gly")),
            Err(ValueError::UnknownToken {
                position: 1,
                found: String::new()
            })
        );
        assert_eq!(
            s.parse_value(&json!("ala-")),
            Err(ValueError::UnknownToken {
                position: 1,
                found: String::new()
            })
        );
    }

    #[test]
    fn sequence_parse_truncates_the_unknown_text_to_16_chars() {
        let s = space(&["a", "b"], 1, 8, "");
        let long = format!("a{}", "é".repeat(40));
        match s.parse_value(&json!(long)) {
            Err(ValueError::UnknownToken { position, found }) => {
                assert_eq!(position, 1);
                assert_eq!(found, "é".repeat(16));
            }
            other => panic!("expected UnknownToken, got {other:?}"),
        }
    }

    #[test]
    fn sequence_parse_rejects_lengths_outside_bounds() {
        let s = space(&["a", "b"], 2, 3, "");
        let length = |l| {
            Err(ValueError::Length {
                length: l,
                min: 2,
                max: 3,
            })
        };
        assert_eq!(s.parse_value(&json!("")), length(0));
        assert_eq!(s.parse_value(&json!("a")), length(1));
        assert_eq!(s.parse_value(&json!("abab")), length(4));
        let s = space(&["a", "b"], 2, 3, ",");
        assert_eq!(s.parse_value(&json!("")), length(0));
        assert_eq!(s.parse_value(&json!("a,b,a,b")), length(4));
        assert_eq!(s.parse_value(&json!("a,b")), Ok(State(vec![0, 1])));
    }

    #[test]
    fn sequence_parse_rejects_values_that_are_not_strings() {
        let s = space(&["a", "b"], 1, 3, "");
        for v in [json!(["a", "b"]), json!(1), json!(null), json!({"a": 1})] {
            assert_eq!(
                s.parse_value(&v),
                Err(ValueError::WrongType {
                    expected: "a string"
                })
            );
        }
    }

    #[test]
    fn sequence_forward_mask_offers_stop_from_min_length_and_appends_below_max_length() {
        let s = space(&["a", "b"], 2, 3, "");
        let mask = |st: &[u16]| {
            let mut m = vec![true; 3];
            s.forward_mask(&State(st.to_vec()), &mut m);
            m
        };
        assert_eq!(mask(&[]), [true, true, false]);
        assert_eq!(mask(&[0]), [true, true, false]);
        assert_eq!(mask(&[0, 1]), [true, true, true]);
        assert_eq!(mask(&[0, 1, 1]), [false, false, true]);
    }

    #[test]
    fn sequence_step_rejects_stop_out_of_range_and_full_states() {
        let s = space(&["a", "b"], 1, 2, "");
        let full = State(vec![0, 1]);
        assert_eq!(s.step(&s.initial(), 1), Ok(State(vec![1])));
        assert!(s.step(&s.initial(), 2).is_err());
        assert!(s.step(&s.initial(), 99).is_err());
        assert_eq!(
            s.step(&full, 0),
            Err(InvalidAction {
                action: 0,
                state: full.clone()
            })
        );
    }

    #[test]
    fn sequence_backward_step_removes_only_the_last_token() {
        let s = space(&["a", "b", "c"], 1, 3, "");
        let x = State(vec![2, 0]);
        assert_eq!(s.backward_step(&x, 0), Ok(State(vec![2])));
        assert!(s.backward_step(&x, 2).is_err());
        assert!(s.backward_step(&x, 3).is_err());
        assert!(s.backward_step(&s.initial(), 0).is_err());
        let mut mask = vec![true; 3];
        s.backward_mask(&x, &mut mask);
        assert_eq!(mask, [true, false, false]);
        s.backward_mask(&s.initial(), &mut mask);
        assert_eq!(mask, [false, false, false]);
    }

    #[test]
    fn sequence_encoding_is_one_hot_per_position_with_empty_positions_zero() {
        let s = space(&["a", "b", "c"], 1, 3, "");
        assert_eq!(s.encoding_dim(), 9);
        let mut out = vec![0.0; 9];
        s.encode_into(&State(vec![2, 0]), &mut out);
        assert_eq!(out, [0., 0., 1., 1., 0., 0., 0., 0., 0.]);
    }

    #[test]
    fn sequence_to_value_joins_tokens_with_the_separator() {
        assert_eq!(
            space(&["ala", "gly"], 1, 3, "-").to_value(&State(vec![1, 0, 0])),
            json!("gly-ala-ala")
        );
        assert_eq!(
            space(&["A", "C"], 1, 3, "").to_value(&State(vec![1, 0])),
            json!("CA")
        );
    }

    #[test]
    fn sequence_distance_is_hamming_for_equal_lengths_and_levenshtein_otherwise() {
        let s = space(&["a", "b", "c"], 1, 6, "");
        let d = |x: &[u16], y: &[u16]| s.distance(&State(x.to_vec()), &State(y.to_vec()));
        assert_eq!(d(&[0, 1, 2], &[0, 1, 2]), 0.0);
        assert_eq!(d(&[0, 1, 2], &[1, 2, 0]), 3.0); // Levenshtein would say 2
        assert_eq!(d(&[0, 1, 2], &[1, 2]), 1.0);
        assert_eq!(d(&[0, 0, 0], &[1]), 3.0);
        assert_eq!(d(&[], &[1, 2]), 2.0);
    }

    #[test]
    fn sequence_n_states_sums_powers_and_reports_overflow() {
        assert_eq!(space(&["a", "b"], 1, 3, "").n_states(), Some(15));
        assert_eq!(space(&["a", "b", "c"], 2, 2, "").n_states(), Some(13));
        let big: Vec<String> = (0..1024).map(|i| format!("t{i}")).collect();
        assert_eq!(
            SequenceSpace::new(big, 1, 512, ",".into())
                .unwrap()
                .n_states(),
            None
        );
        assert_eq!(space(&["a", "b"], 1, 63, "").n_states(), Some(u64::MAX));
        assert_eq!(space(&["a", "b"], 1, 64, "").n_states(), None);
    }

    #[test]
    fn sequence_enumerate_lists_every_state_or_none_past_the_limit() {
        let s = space(&["a", "b"], 1, 2, "");
        assert_eq!(
            s.enumerate(7),
            Some(vec![
                State(vec![]),
                State(vec![0]),
                State(vec![1]),
                State(vec![0, 0]),
                State(vec![0, 1]),
                State(vec![1, 0]),
                State(vec![1, 1]),
            ])
        );
        assert_eq!(s.enumerate(6), None);
    }

    /// Tokens from a small pool with multi-byte chars, so char and byte offsets differ.
    fn alphabet_strategy() -> impl Strategy<Value = Vec<String>> {
        let token = prop::collection::vec(prop::sample::select(vec!["a", "b", "é", "日"]), 1..=3)
            .prop_map(|cs| cs.concat());
        prop::collection::btree_set(token, 2..=4)
            .prop_map(|set| set.into_iter().collect::<Vec<_>>())
            .prop_shuffle()
    }

    fn space_strategy() -> impl Strategy<Value = SequenceSpace> {
        (
            alphabet_strategy(),
            1usize..=2,
            0usize..=2,
            prop::sample::select(vec!["", "", ",", "-+", "ab", "aa", "é"]),
        )
            .prop_filter_map("ambiguous alphabet", |(alphabet, min, extra, sep)| {
                SequenceSpace::new(alphabet, min, min + extra, sep.to_string()).ok()
            })
    }

    fn chemistry_space_strategy() -> impl Strategy<Value = SequenceSpace> {
        prop::sample::select(vec![&CHEMISTRY[..], &SMILES_LIKE[..]])
            .prop_map(|tokens| space(tokens, 1, 24, ""))
    }

    /// The state's tokens as text, with `bad` in place of token `at`.
    fn joined_with(s: &SequenceSpace, x: &State, at: usize, bad: &str) -> String {
        let pieces: Vec<&str> =
            x.0.iter()
                .enumerate()
                .map(|(i, &t)| {
                    if i == at {
                        bad
                    } else {
                        s.alphabet()[t as usize].as_str()
                    }
                })
                .collect();
        pieces.join(s.separator())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn the_bounded_edit_distance_answers_as_the_full_one(
            x in prop::collection::vec(0u16..4, 0..24),
            y in prop::collection::vec(0u16..4, 0..24),
            k in 0usize..30,
        ) {
            prop_assert_eq!(levenshtein_at_least(&x, &y, k), levenshtein(&x, &y) >= k);
            let seq = space(&["a", "b", "c", "d"], 1, 24, "");
            let (sx, sy) = (State(x.clone()), State(y.clone()));
            for d in [0.0, 0.5, 1.0, 2.0, 2.5, k as f64] {
                prop_assert_eq!(seq.distance_at_least(&sx, &sy, d), seq.distance(&sx, &sy) >= d);
            }
        }

        #[test]
        fn sequence_walks_keep_the_space_invariants(
            s in space_strategy(),
            forward in prop::collection::vec(any::<usize>(), 0..8),
            backward in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            invariants::check_walks(&s, &forward, &backward);
        }

        #[test]
        fn sequence_small_spaces_enumerate_every_state_parents_first(s in space_strategy()) {
            invariants::check_enumerate(&s);
        }

        #[test]
        fn sequence_parse_rejects_a_token_outside_the_alphabet_at_its_position(
            s in space_strategy(),
            forward in prop::collection::vec(any::<usize>(), 0..8),
            at in any::<prop::sample::Index>(),
        ) {
            let x = invariants::walk(&s, &forward).pop().unwrap();
            prop_assume!(s.can_stop(&x));
            let at = at.index(x.0.len());
            let text = joined_with(&s, &x, at, "#");
            let position = if s.separator().is_empty() {
                x.0[..at]
                    .iter()
                    .map(|&t| s.alphabet()[t as usize].chars().count())
                    .sum()
            } else {
                at
            };
            match s.parse_value(&json!(text)) {
                Err(ValueError::UnknownToken { position: p, found }) => {
                    prop_assert_eq!(p, position);
                    prop_assert!(found.starts_with('#'), "{:?}", found);
                    prop_assert!(found.chars().count() <= EXCERPT_CHARS);
                }
                other => prop_assert!(false, "expected UnknownToken, got {:?}", other),
            }
        }

        #[test]
        fn sequence_chemistry_alphabets_read_back_every_sequence(
            s in chemistry_space_strategy(),
            tokens in prop::collection::vec(any::<prop::sample::Index>(), 1..=24),
            forward in prop::collection::vec(any::<usize>(), 0..24),
            backward in prop::collection::vec(any::<usize>(), 0..8),
            seed in any::<u64>(),
        ) {
            let x = State(tokens.iter().map(|i| i.index(s.alphabet().len()) as u16).collect());
            prop_assert_eq!(s.parse_value(&s.to_value(&x)), Ok(x.clone()));
            // The states a forward walk samples, and those local search makes from them.
            invariants::check_walks(&s, &forward, &backward);
            let walked = invariants::walk(&s, &forward).pop().unwrap();
            prop_assume!(s.can_stop(&walked));
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mutant = s.mutate(&walked, &mut rng);
            let child = s.crossover(&walked, &x, &mut rng);
            for y in [walked, mutant, child] {
                prop_assert_eq!(s.parse_value(&s.to_value(&y)), Ok(y.clone()));
            }
        }

        #[test]
        fn sequence_parse_accepts_exactly_the_lengths_in_bounds(
            s in space_strategy(),
            tokens in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let x = State(tokens.iter().map(|i| i.index(s.alphabet().len()) as u16).collect());
            let parsed = s.parse_value(&s.to_value(&x));
            if (s.min_length()..=s.max_length()).contains(&x.0.len()) {
                prop_assert_eq!(parsed, Ok(x));
            } else {
                prop_assert_eq!(parsed, Err(ValueError::Length {
                    length: x.0.len(),
                    min: s.min_length(),
                    max: s.max_length(),
                }));
            }
        }
    }
}
