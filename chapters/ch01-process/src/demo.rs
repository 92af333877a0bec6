//! The work every start-up path in the demo does, so that cold, zygote and warm are compared on
//! the same job: load a "model" once, then answer a request with it.
//!
//! The model is a stand-in for what a real function loads before it can answer (weights, a
//! tokenizer, a config): a table of pseudo-random weights, built at load time, touching every page.
//! The answer counts the request's words and scores each word by looking it up in the table.

/// A stand-in for a loaded model: a table of weights.
#[derive(Debug)]
pub struct Model {
    weights: Vec<u32>,
}

/// How many weights the model holds (8 MiB of u32).
pub const MODEL_WEIGHTS: usize = 2 << 20;

impl Model {
    // ANCHOR: load
    /// "Loads" the model: fills the table, as reading and decoding weights from disk would.
    /// This is the work a cold start repeats every time and a warm worker does once.
    pub fn load() -> Model {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let weights = (0..MODEL_WEIGHTS)
            .map(|_| {
                // xorshift64: cheap, deterministic, and not something the compiler can skip.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u32
            })
            .collect();
        Model { weights }
    }
    // ANCHOR_END: load

    /// Answers a request: `words=<count> score=<sum of the words' weights>`.
    pub fn answer(&self, request: &[u8]) -> Vec<u8> {
        let mut words = 0u64;
        let mut score = 0u64;
        for word in request
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
        {
            words += 1;
            // FNV-1a hash of the word picks its weight.
            let hash = word.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            score += u64::from(self.weights[(hash % MODEL_WEIGHTS as u64) as usize]);
        }
        format!("words={words} score={score}").into_bytes()
    }
}

/// The request the demo sends on every path.
pub const REQUEST: &str = "the quick brown fox jumps over the lazy dog";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_counts_words_and_is_deterministic() {
        let model = Model::load();
        let reply = String::from_utf8(model.answer(b"  one two\tthree\n")).unwrap();
        assert!(reply.starts_with("words=3 score="), "{reply}");
        assert_eq!(
            model.answer(b"one two three"),
            model.answer(b"one two three")
        );
        assert_eq!(model.answer(b""), b"words=0 score=0");
    }
}
