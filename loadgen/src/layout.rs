//! What each participant of a simulcast scenario shows: a speaker layout where the first
//! `on_screen` of the others (in join order) have tiles, the first of them large and the rest
//! thumbnails, and every other participant's video is hidden (a tile of no size: the relay
//! sends it nothing). Pure: indexes in, tiles out.

/// The large tile: the top layer of the synthetic simulcast publisher (1280x720).
pub const LARGE_TILE: (u32, u32) = (1280, 720);
/// A thumbnail: its lowest layer (320x180).
pub const THUMBNAIL: (u32, u32) = (320, 180);
/// A hidden tile.
pub const HIDDEN: (u32, u32) = (0, 0);

/// The tile `viewer` shows each other participant of `participants` in, as (publisher's
/// index, tile), in join order.
pub fn tiles(viewer: usize, participants: usize, on_screen: usize) -> Vec<(usize, (u32, u32))> {
    (0..participants)
        .filter(|&p| p != viewer)
        .enumerate()
        .map(|(rank, p)| {
            let tile = match rank {
                0 if on_screen > 0 => LARGE_TILE,
                rank if rank < on_screen => THUMBNAIL,
                _ => HIDDEN,
            };
            (p, tile)
        })
        .collect()
}

/// How many viewers show `publisher` in a tile of some size.
pub fn viewers_of(publisher: usize, participants: usize, on_screen: usize) -> usize {
    (0..participants)
        .filter(|&viewer| {
            tiles(viewer, participants, on_screen)
                .iter()
                .any(|&(p, tile)| p == publisher && tile != HIDDEN)
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_viewer_shows_the_first_others_one_large_and_hides_the_rest() {
        let of_first = tiles(0, 10, 3);
        assert_eq!(of_first.len(), 9);
        assert_eq!(of_first[0], (1, LARGE_TILE));
        assert_eq!(of_first[1], (2, THUMBNAIL));
        assert_eq!(of_first[2], (3, THUMBNAIL));
        assert!(of_first[3..].iter().all(|&(_, tile)| tile == HIDDEN));
        let of_last = tiles(9, 10, 3);
        assert_eq!(
            &of_last[..3],
            &[(0, LARGE_TILE), (1, THUMBNAIL), (2, THUMBNAIL)]
        );
        assert!(tiles(5, 10, 0).iter().all(|&(_, tile)| tile == HIDDEN));
    }

    #[test]
    fn three_on_screen_in_ten_keep_four_publishers_seen() {
        // 0, 1 and 2 are seen by everyone else; 3 only by 0, 1 and 2; 4 to 9 by nobody.
        let seen: Vec<usize> = (0..10).map(|p| viewers_of(p, 10, 3)).collect();
        assert_eq!(seen, vec![9, 9, 9, 3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(seen.iter().sum::<usize>(), 30);
    }
}
