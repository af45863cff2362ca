//! Rendered pages for anonymous viewers: the `video_list` JSON of a list of videos, kept whole,
//! so that a popular page (the newest feed page, what the app shows on open) costs one lookup
//! instead of one per video and author (each a few dependent cache misses; bench/NOTES.md).
//! A page is served while none of its videos and authors was invalidated since it was
//! rendered (their invalidation stamps, one small array) and for at most `near.max_age`, so it
//! is never staler than the entries it was rendered from.

use super::{NearCache, NearKey, Ticket};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Pages held at most; all are dropped when a new one would exceed this.
const MAX_PAGES: usize = 256;

/// A rendered `video_list`.
pub struct Page {
    /// The stamp buckets of its videos and authors.
    deps: Vec<usize>,
    ticket: u64,
    built: Instant,
    pub json: Box<[u8]>,
}

/// The pages by their requested video ids.
#[derive(Default)]
pub(super) struct Pages(Mutex<HashMap<Box<[i64]>, Arc<Page>>>);

impl Pages {
    pub(super) fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl NearCache {
    /// The rendered `video_list` of `ids` for an anonymous viewer, if held and current.
    pub fn anon_page(&self, ids: &[i64]) -> Option<Arc<Page>> {
        if !self.enabled {
            return None;
        }
        let page = {
            let map = self.pages.0.lock().unwrap_or_else(|e| e.into_inner());
            map.get(ids).cloned()
        }?;
        let current = page.built.elapsed() < self.max_age
            && page
                .deps
                .iter()
                .all(|b| self.stamps[*b].load(Ordering::Acquire) <= page.ticket);
        if current {
            self.stats.pages.fetch_add(1, Ordering::Relaxed);
            Some(page)
        } else {
            None
        }
    }

    /// Keeps `json`, the `video_list` of `ids` by `authors` for an anonymous viewer, rendered
    /// from entries looked up after ticket `t` was taken.
    pub fn keep_anon_page(&self, ids: &[i64], authors: &[i64], t: Ticket, json: &[u8]) {
        if !self.enabled {
            return;
        }
        let deps = ids
            .iter()
            .map(|id| NearKey::Video(*id).bucket())
            .chain(authors.iter().map(|id| NearKey::User(*id).bucket()))
            .collect();
        let page = Arc::new(Page {
            deps,
            ticket: t.0,
            built: Instant::now(),
            json: json.into(),
        });
        let mut map = self.pages.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_PAGES && !map.contains_key(ids) {
            map.clear();
        }
        map.insert(ids.into(), page);
    }
}
