//! Who is speaking in a meeting, loudest first, from the audio levels publishers put in their
//! packets (`Media.audio_level`: 127 is full scale, 0 not measured). Each publisher's level is
//! the mean over the last [`WINDOW_MS`]; a publisher is speaking while that mean is at least
//! [`SPEAKING_LEVEL`] (about -50 dBov: a voice, not a room's hum). The ranking is looked at
//! every [`WINDOW_MS`] and said when it changed ([`SpeakerRanking::due`]).
//!
//! Pure: levels and the time in, the list out.

use std::collections::HashMap;

use crate::ids::ParticipantId;

/// The window a level is averaged over, and how often the ranking is looked at.
pub const WINDOW_MS: u64 = 300;
/// The mean level (127 - dBov) from which a publisher counts as speaking.
pub const SPEAKING_LEVEL: f64 = 77.0;
/// How many speakers the list names at most.
pub const MAX_SPEAKERS: usize = 3;

/// The sum and count of one publisher's levels in the current window.
#[derive(Debug, Default, Clone, Copy)]
struct Window {
    sum: u64,
    packets: u32,
}

/// One meeting's speakers.
#[derive(Debug, Default)]
pub struct SpeakerRanking {
    current: HashMap<ParticipantId, Window>,
    window_start_ms: u64,
    said: Vec<ParticipantId>,
}

impl SpeakerRanking {
    /// An audio packet of `participant` with `level` (0: not measured, not counted).
    pub fn heard(&mut self, participant: ParticipantId, level: u32) {
        if level == 0 {
            return;
        }
        let window = self.current.entry(participant).or_default();
        window.sum += u64::from(level.min(127));
        window.packets += 1;
    }

    /// Forgets `participant` (it left); the next list will not name it.
    pub fn forget(&mut self, participant: ParticipantId) {
        self.current.remove(&participant);
    }

    /// At `now_ms`: the list of speakers, loudest first, when a window has closed and the list
    /// is not what was last said; `None` otherwise.
    pub fn due(&mut self, now_ms: u64) -> Option<Vec<ParticipantId>> {
        if now_ms.saturating_sub(self.window_start_ms) < WINDOW_MS {
            return None;
        }
        self.window_start_ms = now_ms;
        let mut speaking: Vec<(f64, ParticipantId)> = self
            .current
            .drain()
            .filter(|(_, w)| w.packets > 0)
            .map(|(id, w)| (w.sum as f64 / f64::from(w.packets), id))
            .filter(|(mean, _)| *mean >= SPEAKING_LEVEL)
            .collect();
        speaking.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let list: Vec<ParticipantId> = speaking
            .into_iter()
            .take(MAX_SPEAKERS)
            .map(|(_, id)| id)
            .collect();
        if list == self.said {
            return None;
        }
        self.said = list.clone();
        Some(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `packets` packets of each `(participant, level)`, 20 ms apart from `start_ms`; what
    /// `due` said at the end of the window.
    fn speak(
        ranking: &mut SpeakerRanking,
        start_ms: u64,
        levels: &[(ParticipantId, u32)],
    ) -> Option<Vec<ParticipantId>> {
        for _ in 0..15 {
            for &(id, level) in levels {
                ranking.heard(id, level);
            }
        }
        ranking.due(start_ms + WINDOW_MS)
    }

    #[test]
    fn the_loudest_speakers_first_and_only_when_it_changes() {
        let mut ranking = SpeakerRanking::default();
        // 1 speaks (-20 dBov), 2 murmurs (-40), 3 hums (-90): 1 then 2.
        let said = speak(&mut ranking, 0, &[(1, 107), (2, 87), (3, 37)]);
        assert_eq!(said, Some(vec![1, 2]));
        // The same again: nothing to say.
        assert_eq!(
            speak(&mut ranking, 300, &[(1, 107), (2, 87), (3, 37)]),
            None
        );
        // 2 gets louder than 1.
        assert_eq!(
            speak(&mut ranking, 600, &[(1, 100), (2, 110)]),
            Some(vec![2, 1])
        );
        // Everyone quiet (or silent: no packets): an empty list, once.
        assert_eq!(speak(&mut ranking, 900, &[(1, 20)]), Some(vec![]));
        assert_eq!(speak(&mut ranking, 1200, &[]), None);
    }

    #[test]
    fn at_most_three_are_named_and_unmeasured_levels_do_not_count() {
        let mut ranking = SpeakerRanking::default();
        let said = speak(
            &mut ranking,
            0,
            &[(1, 100), (2, 101), (3, 102), (4, 103), (5, 0)],
        );
        assert_eq!(said, Some(vec![4, 3, 2]));
    }

    #[test]
    fn nothing_is_said_before_a_window_closes_and_a_leaver_is_forgotten() {
        let mut ranking = SpeakerRanking::default();
        ranking.heard(1, 110);
        assert_eq!(ranking.due(100), None);
        ranking.forget(1);
        ranking.heard(2, 110);
        assert_eq!(ranking.due(300), Some(vec![2]));
    }
}
