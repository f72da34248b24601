//! Who is speaking in a meeting, loudest first, from the audio levels publishers put in their
//! packets (`Media.audio_level`: 127 is full scale, 0 not measured). Every [`WINDOW_MS`] the
//! ranking is looked at: a publisher with at least [`MIN_LOUD_PACKETS`] packets at or above
//! [`SPEAKING_LEVEL`] (about -50 dBov: a voice, not a room's hum) in that window speaks, at the
//! mean level of those packets (the pauses between words do not count), and stays in the list
//! for [`HOLD_MS`] after its last such window (a pause is not the end of a turn). The list is
//! said when it changed ([`SpeakerRanking::due`]).
//!
//! Pure: levels and the time in, the list out.

use std::collections::HashMap;

use crate::ids::ParticipantId;

/// How often the ranking is looked at, and the window its levels are taken over.
pub const WINDOW_MS: u64 = 300;
/// The level (127 - dBov) from which a packet is loud.
pub const SPEAKING_LEVEL: u32 = 77;
/// Loud packets in a window that make a publisher speak (60 ms of 20 ms packets).
pub const MIN_LOUD_PACKETS: u32 = 3;
/// How long a speaker stays in the list after its last window of speech.
pub const HOLD_MS: u64 = 1000;
/// How many speakers the list names at most.
pub const MAX_SPEAKERS: usize = 3;

/// One publisher's loud packets in the current window.
#[derive(Debug, Default, Clone, Copy)]
struct Window {
    loud_sum: u64,
    loud_packets: u32,
}

/// A speaker's level in its last window of speech, and when that was.
#[derive(Debug, Clone, Copy)]
struct Speaking {
    level: f64,
    at_ms: u64,
}

/// One meeting's speakers.
#[derive(Debug, Default)]
pub struct SpeakerRanking {
    current: HashMap<ParticipantId, Window>,
    speaking: HashMap<ParticipantId, Speaking>,
    window_start_ms: u64,
    said: Vec<ParticipantId>,
}

impl SpeakerRanking {
    /// An audio packet of `participant` with `level` (0: not measured, not counted).
    pub fn heard(&mut self, participant: ParticipantId, level: u32) {
        if level < SPEAKING_LEVEL {
            return;
        }
        let window = self.current.entry(participant).or_default();
        window.loud_sum += u64::from(level.min(127));
        window.loud_packets += 1;
    }

    /// The list last said, loudest first.
    pub fn said(&self) -> &[ParticipantId] {
        &self.said
    }

    /// Forgets `participant` (it left); the next list will not name it.
    pub fn forget(&mut self, participant: ParticipantId) {
        self.current.remove(&participant);
        self.speaking.remove(&participant);
    }

    /// At `now_ms`: the list of speakers, loudest first, when a window has closed and the list
    /// is not what was last said; `None` otherwise.
    pub fn due(&mut self, now_ms: u64) -> Option<Vec<ParticipantId>> {
        if now_ms.saturating_sub(self.window_start_ms) < WINDOW_MS {
            return None;
        }
        self.window_start_ms = now_ms;
        for (id, window) in self.current.drain() {
            if window.loud_packets >= MIN_LOUD_PACKETS {
                let level = window.loud_sum as f64 / f64::from(window.loud_packets);
                self.speaking.insert(
                    id,
                    Speaking {
                        level,
                        at_ms: now_ms,
                    },
                );
            }
        }
        self.speaking
            .retain(|_, s| now_ms.saturating_sub(s.at_ms) < HOLD_MS);
        let mut ranked: Vec<(f64, ParticipantId)> =
            self.speaking.iter().map(|(id, s)| (s.level, *id)).collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let list: Vec<ParticipantId> = ranked
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

    /// 15 packets (300 ms) of each `(participant, level)` from `start_ms`; what `due` said at
    /// the end of the window.
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
        // Everyone quiet: the list holds for a second, then empties, once.
        let mut start = 900;
        let mut said = None;
        while said.is_none() && start < 5000 {
            said = speak(&mut ranking, start, &[(1, 20)]);
            start += WINDOW_MS;
        }
        assert_eq!(said, Some(vec![]));
        assert!(start - 900 >= HOLD_MS, "emptied after {} ms", start - 900);
        assert_eq!(speak(&mut ranking, start, &[]), None);
    }

    #[test]
    fn a_voice_with_pauses_speaks_and_a_click_does_not() {
        let mut ranking = SpeakerRanking::default();
        // 1: 100 ms of speech at -20 dBov in the window, the rest silence; 2: one loud packet.
        for packet in 0..15 {
            ranking.heard(1, if packet < 5 { 107 } else { 1 });
            ranking.heard(2, if packet == 7 { 120 } else { 1 });
        }
        assert_eq!(ranking.due(WINDOW_MS), Some(vec![1]));
        // A pause of one window: still speaking.
        assert_eq!(ranking.due(2 * WINDOW_MS), None);
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
        for _ in 0..5 {
            ranking.heard(1, 110);
        }
        assert_eq!(ranking.due(100), None);
        ranking.forget(1);
        for _ in 0..5 {
            ranking.heard(2, 110);
        }
        assert_eq!(ranking.due(300), Some(vec![2]));
        ranking.forget(2);
        assert_eq!(ranking.due(600), Some(vec![]));
    }
}
