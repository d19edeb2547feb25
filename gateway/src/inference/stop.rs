//! Stop sequences over streamed text: text is released as soon as it cannot be the start of a
//! stop sequence, and generation ends at the first complete one (which is not part of the
//! answer).

/// Watches generated text for the request's stop sequences.
#[derive(Debug)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text seen but not yet released, because it may begin a stop sequence.
    held: String,
}

/// What one piece of text led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Text that is certainly part of the answer (may be empty).
    Emit(String),
    /// A stop sequence completed; the text before it is the last of the answer.
    Stop(String),
}

impl StopMatcher {
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    pub fn push(&mut self, piece: &str) -> Step {
        self.held.push_str(piece);
        let first_stop = self
            .stops
            .iter()
            .filter_map(|stop| self.held.find(stop.as_str()))
            .min();
        if let Some(at) = first_stop {
            let before = self.held[..at].to_owned();
            self.held.clear();
            return Step::Stop(before);
        }
        let keep = self.longest_partial_stop();
        let release = self.held.len() - keep;
        let out = self.held[..release].to_owned();
        self.held.drain(..release);
        Step::Emit(out)
    }

    /// Text held back when generation ends for another reason: it is part of the answer.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Length of the longest suffix of the held text that is a proper prefix of a stop sequence.
    fn longest_partial_stop(&self) -> usize {
        let mut longest = 0;
        for stop in &self.stops {
            for (len, _) in stop.char_indices().skip(1) {
                if len > longest && self.held.ends_with(&stop[..len]) {
                    longest = len;
                }
            }
        }
        longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_released_unless_it_may_start_a_stop() {
        let mut m = StopMatcher::new(&["\n\nUser:".into()]);
        assert_eq!(m.push("Hello"), Step::Emit("Hello".into()));
        assert_eq!(m.push(" world\n"), Step::Emit(" world".into()));
        assert_eq!(m.push("\nUs"), Step::Emit(String::new()));
        assert_eq!(m.push("er: more"), Step::Stop(String::new()));
    }

    #[test]
    fn a_false_start_is_released_and_held_text_ends_the_answer() {
        let mut m = StopMatcher::new(&["END".into(), "STOP".into()]);
        assert_eq!(m.push("the EN"), Step::Emit("the ".into()));
        assert_eq!(m.push("Dless"), Step::Stop(String::new()));
        let mut m = StopMatcher::new(&["END".into()]);
        assert_eq!(m.push("E"), Step::Emit(String::new()));
        assert_eq!(m.push("x"), Step::Emit("Ex".into()));
        assert_eq!(m.push("ST"), Step::Emit("ST".into()));
        assert_eq!(m.push("E"), Step::Emit(String::new()));
        assert_eq!(m.finish(), "E");
    }
}
