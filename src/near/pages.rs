//! Rendered pages: the `video_list` JSON of a list of videos with every viewer flag `false`,
//! and where each flag sits, kept whole so that a popular page (the newest feed pages, what
//! the app shows on open) costs one lookup instead of one per video and author (each a few
//! dependent cache misses and a shared reference count; bench/NOTES.md). An anonymous reader
//! gets the JSON as it is; a viewer's copy is written from it with their flags set in place.
//!
//! A page is served while none of its videos and authors was invalidated since it was
//! rendered (their invalidation stamps, one small array) and under the same age rule as the
//! entries it was rendered from. Pages have their own share of the near-cache's byte bound.

use super::people::UserPage;
use super::render::{around_flag, bool_json, write_user_at, UserEntry, VideoEntry, FALSE};
use super::{NearCache, NearKey, NearVal, Ticket};
use quick_cache::sync::Cache as Qc;
use quick_cache::Weighter;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

/// The longest list kept as a page: feed pages and most users' lists. A longer one (a
/// favorite list of hundreds) is rendered for its request only: kept, such pages would crowd
/// each other out of the pages' share of the bound and cost more than they save (measured:
/// bench/NOTES.md).
pub const PAGE_MAX: usize = 64;

/// A rendered `video_list`.
pub struct Page {
    /// The stamp buckets of its videos and authors.
    deps: Box<[usize]>,
    ticket: u64,
    built: Instant,
    /// The JSON array, every `is_favorite` and `is_follow` false.
    json: Box<[u8]>,
    /// For each video: where its `is_favorite` value and its author's `is_follow` value start.
    flags: Box<[(u32, u32)]>,
    /// The videos, in order, and each one's author (for the viewer's flags).
    pub videos: Box<[i64]>,
    pub authors: Box<[i64]>,
}

impl Page {
    /// Its allocation and those it holds (for the near-cache's bound).
    fn heap(&self) -> usize {
        use super::weigh::{arc, slice};
        arc::<Page>()
            + slice(&self.deps)
            + slice(&self.json)
            + slice(&self.flags)
            + slice(&self.videos)
            + slice(&self.authors)
    }

    /// Renders `items` (videos with their authors, in order) with every flag false.
    fn render(items: &[(Arc<VideoEntry>, Arc<UserEntry>)], t: Ticket) -> Self {
        let mut json = Vec::new();
        let mut flags = Vec::with_capacity(items.len());
        write_items(&mut json, items, &[], &[], |fav, follow| {
            flags.push((fav, follow))
        });
        let mut deps: Vec<usize> = items
            .iter()
            .flat_map(|(v, a)| {
                [
                    NearKey::Video(v.id).bucket(),
                    NearKey::User(a.data.id).bucket(),
                ]
            })
            .collect();
        deps.sort_unstable();
        deps.dedup();
        Page {
            deps: deps.into(),
            ticket: t.0,
            built: Instant::now(),
            json: json.into(),
            flags: flags.into(),
            videos: items.iter().map(|(v, _)| v.id).collect(),
            authors: items.iter().map(|(_, a)| a.data.id).collect(),
        }
    }

    /// The page as an anonymous reader sees it.
    pub fn anonymous(&self) -> &[u8] {
        &self.json
    }

    /// Appends the page as a viewer sees it: whether they like each video and follow each
    /// video's author (one of each per video, in order).
    pub fn write(&self, buf: &mut Vec<u8>, liked: &[bool], follows: &[bool]) {
        buf.reserve(self.json.len());
        let mut at = 0;
        for (i, (fav, follow)) in self.flags.iter().enumerate() {
            let (fav, follow) = (*fav as usize, *follow as usize);
            buf.extend_from_slice(&self.json[at..fav]);
            buf.extend_from_slice(bool_json(liked.get(i).copied().unwrap_or(false)));
            buf.extend_from_slice(&self.json[fav + FALSE..follow]);
            buf.extend_from_slice(bool_json(follows.get(i).copied().unwrap_or(false)));
            at = follow + FALSE;
        }
        buf.extend_from_slice(&self.json[at..]);
    }
}

/// Appends `items` (videos with their authors, in order) as a JSON array of `Video` objects,
/// `liked[i]` and `follows[i]` the viewer's flags of the i-th (missing: false), and tells
/// `at(fav, follow)` where each video's two flag values start in `json` (a page renders with
/// every flag false).
fn write_items(
    json: &mut Vec<u8>,
    items: &[(Arc<VideoEntry>, Arc<UserEntry>)],
    liked: &[bool],
    follows: &[bool],
    mut at: impl FnMut(u32, u32),
) {
    let size: usize = items
        .iter()
        .map(|(v, a)| v.head().len() + v.rest().len() + a.json_len() + 24)
        .sum();
    json.reserve(size + 2);
    json.push(b'[');
    for (i, (v, a)) in items.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        let liked = liked.get(i).copied().unwrap_or(false);
        let follows = follows.get(i).copied().unwrap_or(false);
        let (fav, follow) = write_item(json, v, a, liked, follows);
        at(fav as u32, follow as u32);
    }
    json.push(b']');
}

/// Appends video `v` by `a` as a `Video` object with the given flags; returns where its
/// `is_favorite` and its author's `is_follow` values start.
fn write_item(
    json: &mut Vec<u8>,
    v: &VideoEntry,
    a: &UserEntry,
    liked: bool,
    follows: bool,
) -> (usize, usize) {
    let fav = write_video_head(json, v, liked);
    let follow = write_user_at(json, a, follows);
    json.extend_from_slice(v.rest());
    (fav, follow)
}

/// What goes between a video's `is_favorite` value and its author's object.
const AUTHOR: &[u8] = b",\"author\":";

/// Appends video `v`'s JSON up to where its author goes, with `is_favorite` `liked`; returns
/// where that value starts.
fn write_video_head(json: &mut Vec<u8>, v: &VideoEntry, liked: bool) -> usize {
    json.extend_from_slice(v.head());
    let fav = json.len();
    json.extend_from_slice(bool_json(liked));
    json.extend_from_slice(AUTHOR);
    fav
}

/// A video rendered with its author, both flags false: a list too long to keep whole (a
/// favorite list of a hundred videos) is written from one card a video, one lookup instead of
/// two (each a few dependent cache misses: bench/NOTES.md). Current while neither the video nor
/// its author was invalidated since it was rendered (their stamps).
///
/// The video's part is one allocation, its [`CardHead`] and then its JSON, behind a pointer;
/// the author's part is their entry's JSON, shared by every card of theirs (about 250 of a
/// card's 550 bytes: one copy an author instead of one a video, 20 to 30 MB less heap at
/// scale 1). A list reads about as many cache lines as before: its authors seldom recur
/// soon enough to stay in the CPU's caches (bench/NOTES.md). What a run's weak pointer keeps
/// of an evicted card is the reference counts and the two pointers, 48 bytes (see
/// [`CardRun`]).
#[derive(Clone, Debug)]
pub struct Card {
    /// Its [`CardHead`], then the video's JSON with `is_favorite` false: up to where the
    /// author goes (`{"id":N,"is_favorite":false,"author":`) and after (`,"play_url":..}`).
    bytes: Box<[u8]>,
    /// The author's `User` JSON with `is_follow` false (their entry's).
    author: Arc<[u8]>,
}

/// What a card's bytes hold before its JSON: the first of them, fetched with the JSON's start.
#[derive(Clone, Copy, Debug, PartialEq)]
struct CardHead {
    video: i64,
    author: i64,
    /// The ticket its entries were looked up after.
    ticket: u64,
    /// When it was rendered, in nanoseconds since [`epoch`].
    built: u64,
    /// Where in the video's JSON its `is_favorite` value starts and where its author goes.
    fav: u32,
    split: u32,
    /// Where in the author's JSON their `is_follow` value starts.
    follow: u32,
    /// The stamp buckets of its video and its author.
    deps: [u32; 2],
}

/// The size of a [`CardHead`] in a card's bytes (52, rounded to keep the JSON 8-aligned).
const HEAD: usize = 56;

impl CardHead {
    fn encode(&self) -> [u8; HEAD] {
        let mut b = [0; HEAD];
        b[0..8].copy_from_slice(&self.video.to_ne_bytes());
        b[8..16].copy_from_slice(&self.author.to_ne_bytes());
        b[16..24].copy_from_slice(&self.ticket.to_ne_bytes());
        b[24..32].copy_from_slice(&self.built.to_ne_bytes());
        b[32..36].copy_from_slice(&self.fav.to_ne_bytes());
        b[36..40].copy_from_slice(&self.follow.to_ne_bytes());
        b[40..44].copy_from_slice(&self.deps[0].to_ne_bytes());
        b[44..48].copy_from_slice(&self.deps[1].to_ne_bytes());
        b[48..52].copy_from_slice(&self.split.to_ne_bytes());
        b
    }

    fn decode(b: &[u8]) -> Self {
        let u64_at = |at: usize| u64::from_ne_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        let u32_at = |at: usize| u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        CardHead {
            video: u64_at(0) as i64,
            author: u64_at(8) as i64,
            ticket: u64_at(16),
            built: u64_at(24),
            fav: u32_at(32),
            split: u32_at(48),
            follow: u32_at(36),
            deps: [u32_at(40), u32_at(44)],
        }
    }
}

/// What a card's render time is counted from (the first card's).
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Card {
    fn head(&self) -> CardHead {
        CardHead::decode(&self.bytes[..HEAD])
    }

    /// The video's JSON, without its author.
    fn json(&self) -> &[u8] {
        &self.bytes[HEAD..]
    }

    pub fn video(&self) -> i64 {
        self.head().video
    }

    pub fn author(&self) -> i64 {
        self.head().author
    }

    /// When it was rendered (the age rule).
    pub(super) fn built(&self) -> Instant {
        epoch() + std::time::Duration::from_nanos(self.head().built)
    }

    /// Its `Arc` allocation (the reference counts and its two pointers: what a weak pointer
    /// keeps of an evicted card), its bytes' and its author's JSON's (for the near-cache's
    /// bound). The author's JSON is shared, but each card counts it in full: it is what the
    /// card keeps alive once the author's entry and their other cards are gone (an author
    /// re-rendered leaves each older card holding an older copy), so that the weights stay
    /// an upper bound of what the cache holds.
    pub(super) fn heap(&self) -> usize {
        use super::weigh::{arc, arc_slice, slice};
        arc::<Card>() + slice(&self.bytes) + arc_slice(&self.author)
    }
}

/// Appends `cards` as a JSON array of `Video` objects, `liked[i]` and `follows[i]` the
/// viewer's flags of the i-th (missing: false).
///
/// Each card's JSON is its own allocation, a cache miss away: its first two lines are asked for
/// [`AHEAD`] cards before its turn and the rest [`REST_AHEAD`] before, so that the misses
/// overlap instead of the copy waiting for each line in turn (bench/NOTES.md).
pub fn write_cards(buf: &mut Vec<u8>, cards: &[Arc<Card>], liked: &[bool], follows: &[bool]) {
    let json = |i: usize| {
        if let Some(c) = cards.get(i) {
            prefetch(c.bytes.as_ptr());
            prefetch(c.bytes.as_ptr().wrapping_add(64));
        }
    };
    // and the rest of it (the video's part is about six lines) and its author's part (about
    // five), fewer cards ahead
    let rest = |i: usize| {
        if let Some(c) = cards.get(i) {
            let (p, n) = (c.bytes.as_ptr(), c.bytes.len());
            prefetch_range(p.wrapping_add(128), n.saturating_sub(128));
            prefetch_range(c.author.as_ptr(), c.author.len());
        }
    };
    (0..AHEAD).for_each(json);
    (0..REST_AHEAD).for_each(rest);
    buf.reserve(
        cards
            .iter()
            .map(|c| c.json().len() + c.author.len() + 1)
            .sum::<usize>()
            + 2,
    );
    buf.push(b'[');
    for (i, c) in cards.iter().enumerate() {
        json(i + AHEAD);
        rest(i + REST_AHEAD);
        if i > 0 {
            buf.push(b',');
        }
        write_card(buf, c, liked.get(i).copied(), follows.get(i).copied());
    }
    buf.push(b']');
}

/// The cards of a list too long to keep as a page, in order (a favorite list of a hundred):
/// held, the list costs one lookup instead of one a video (each a few dependent cache misses
/// and a shared reference count: bench/NOTES.md). Current under the pages' rule: none of its
/// videos and authors invalidated since its ticket (their stamps, one sorted pass over the
/// small stamp array) and as young as the entries it came from.
///
/// The cards themselves stay the entries' (weighed there, evicted by their policy): a run
/// holds them weakly, so an evicted card is freed but for its pointer and reference counts
/// (32 bytes, which the run's weight counts) until the run is read again and rebuilt, or
/// evicted itself.
pub struct CardRun {
    /// Stamp buckets (below [`super::STAMPS`], so they fit in 32 bits).
    deps: Box<[u32]>,
    ticket: u64,
    /// When its oldest card was rendered (the age rule).
    built: Instant,
    cards: Box<[Weak<Card>]>,
}

impl CardRun {
    /// Its allocation and those it holds (its ids are the key's), and what each card keeps
    /// once evicted from the entries: the card's pointer and the reference counts in front of
    /// it (for the near-cache's bound).
    fn heap(&self) -> usize {
        use super::weigh::{arc, slice};
        arc::<CardRun>() + slice(&self.deps) + slice(&self.cards) + self.cards.len() * arc::<Card>()
    }

    /// Its cards, in order, for [`write_cards`]; none when one of them is gone (evicted from
    /// the entries and no longer held anywhere).
    ///
    /// The cards lie wherever they were allocated, each a cache miss away. Taken one after
    /// another, every miss would wait for the one before: a weak pointer's upgrade is an atomic
    /// that fences the loads behind it. So each card's counts are asked for [`AHEAD`] cards
    /// before its upgrade, and its bytes' start (its head and the JSON's first line) as it is
    /// upgraded.
    pub fn cards(&self) -> Option<Vec<Arc<Card>>> {
        // the reference counts sit just in front of the card
        let header = |i: usize| {
            if let Some(weak) = self.cards.get(i) {
                prefetch(Weak::as_ptr(weak).cast::<u8>().wrapping_sub(16));
            }
        };
        (0..AHEAD).for_each(header);
        let mut cards = Vec::with_capacity(self.cards.len());
        for (i, weak) in self.cards.iter().enumerate() {
            header(i + AHEAD);
            let c = weak.upgrade()?;
            prefetch(c.bytes.as_ptr());
            cards.push(c);
        }
        Some(cards)
    }
}

/// How many cards ahead of the one being read their memory is asked for: enough misses in
/// flight to hide each one's wait, few enough that what was fetched is still in the L1 cache
/// when its turn comes.
const AHEAD: usize = 8;

/// How many cards ahead of the one being written the rest of its bytes are asked for: the copy
/// of a card's seven lines past its first two waited for each of them (about a tenth of a
/// favorite list's CPU, bench/NOTES.md); fewer cards than [`AHEAD`], so that the lines in
/// flight stay within what the CPU tracks.
const REST_AHEAD: usize = 4;

/// Asks the CPU to bring the cache line at `p` in, without waiting for it (a hint: any address
/// will do, none is read).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and cannot fault, whatever the address; SSE, which the
    // instruction needs, is part of every x86_64 CPU.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Asks for every cache line of the `n` bytes at `p` (none when `n` is 0): one every 64 bytes
/// from `p`, and the last byte's, which an unaligned start leaves on a line of its own.
#[inline(always)]
pub(super) fn prefetch_range(p: *const u8, n: usize) {
    (0..n)
        .step_by(64)
        .for_each(|at| prefetch(p.wrapping_add(at)));
    if n > 0 {
        prefetch(p.wrapping_add(n - 1));
    }
}

/// Appends card `c` with the viewer's flags (None: false).
fn write_card(buf: &mut Vec<u8>, c: &Card, liked: Option<bool>, follows: Option<bool>) {
    let head = c.head();
    let (json, fav, split) = (c.json(), head.fav as usize, head.split as usize);
    let (author_head, author_rest) = around_flag(&c.author, head.follow as usize);
    buf.extend_from_slice(&json[..fav]);
    buf.extend_from_slice(bool_json(liked.unwrap_or(false)));
    buf.extend_from_slice(&json[fav + FALSE..split]);
    buf.extend_from_slice(author_head);
    buf.extend_from_slice(bool_json(follows.unwrap_or(false)));
    buf.extend_from_slice(author_rest);
    buf.extend_from_slice(&json[split..]);
}

/// What a kept rendering is of.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum PageKind {
    /// A `video_list` (this file).
    Videos,
    /// A `user_list` with every flag false (`people.rs`).
    Users,
    /// A viewer's friend list as they see it (`people.rs`): the page's owner is the viewer.
    Friends,
    /// A long list's cards ([`CardRun`]).
    Cards,
    /// A video's newest comments (`comments.rs`): the page's owner is the video, its ids none.
    Comments,
}

/// A kept rendering, by what it is of, whose it is (a friend list's viewer, a comment page's
/// video; 0: anyone's) and the ids it was asked for.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct PageKey {
    pub kind: PageKind,
    pub owner: i64,
    pub ids: Box<[i64]>,
}

/// A [`PageKey`] borrowed, without copying the ids: it hashes as the key does (a box hashes
/// as what it holds).
#[derive(Clone, Copy, Hash)]
pub(super) struct PageQuery<'a> {
    pub kind: PageKind,
    pub owner: i64,
    pub ids: &'a [i64],
}

impl quick_cache::Equivalent<PageKey> for PageQuery<'_> {
    fn equivalent(&self, key: &PageKey) -> bool {
        key.kind == self.kind && key.owner == self.owner && *key.ids == *self.ids
    }
}

#[derive(Clone)]
pub(super) enum PageVal {
    Videos(Arc<Page>),
    Users(Arc<UserPage>),
    Cards(Arc<CardRun>),
    Comments(Arc<super::CommentPage>),
}

#[derive(Clone)]
pub(super) struct PageBytes;

impl Weighter<PageKey, PageVal> for PageBytes {
    fn weight(&self, k: &PageKey, p: &PageVal) -> u64 {
        // the key's ids, every allocation the value holds (`weigh.rs`), and the slot
        let w = super::weigh::SLOT
            + super::weigh::slice(&k.ids)
            + match p {
                PageVal::Videos(p) => p.heap(),
                PageVal::Users(p) => p.heap(),
                PageVal::Cards(r) => r.heap(),
                PageVal::Comments(c) => c.heap(),
            };
        w as u64
    }
}

/// The pages by their requested ids.
pub(super) type Pages = Qc<PageKey, PageVal, PageBytes>;

pub(super) fn pages(max_bytes: u64) -> Pages {
    let est_items = (max_bytes / 8192).clamp(16, 1_000_000) as usize;
    Qc::with_weighter(est_items, max_bytes.max(1), PageBytes)
}

impl NearCache {
    /// What is kept of `kind`, `owner` and `ids`, current or not.
    pub(super) fn held(&self, kind: PageKind, owner: i64, ids: &[i64]) -> Option<PageVal> {
        if !self.enabled {
            return None;
        }
        self.pages.get(&PageQuery { kind, owner, ids })
    }

    /// The rendered page of `ids`, if held and current.
    pub fn page(&self, ids: &[i64]) -> Option<Arc<Page>> {
        if ids.len() > PAGE_MAX {
            return None;
        }
        let PageVal::Videos(page) = self.held(PageKind::Videos, 0, ids)? else {
            return None;
        };
        self.current(page.built, page.deps.iter().copied(), page.ticket)
            .then_some(page)
    }

    /// Whether a rendering built at `built` from entries looked up after ticket `ticket`, with
    /// `deps` their stamp buckets, may be served; counts a page hit if so.
    pub(super) fn current(
        &self,
        built: Instant,
        deps: impl Iterator<Item = usize>,
        ticket: u64,
    ) -> bool {
        let current = self.unchanged_since(built, deps, ticket);
        if current {
            self.stats.pages.fetch_add(1, Ordering::Relaxed);
        }
        current
    }

    /// Whether something built at `built` from entries looked up after ticket `ticket`, with
    /// `deps` their stamp buckets, is still what they say: within the entries' age, and none of
    /// them invalidated since. Counts nothing (a page's hit is [`NearCache::current`]'s).
    pub(super) fn unchanged_since(
        &self,
        built: Instant,
        mut deps: impl Iterator<Item = usize>,
        ticket: u64,
    ) -> bool {
        self.fresh(built) && deps.all(|b| self.stamps[b].load(Ordering::Acquire) <= ticket)
    }

    /// Renders the page of `ids` from `items` (its videos with their authors, looked up after
    /// ticket `t` was taken) and keeps it (up to [`PAGE_MAX`] ids).
    pub fn render_page(
        &self,
        ids: &[i64],
        items: &[(Arc<VideoEntry>, Arc<UserEntry>)],
        t: Ticket,
    ) -> Arc<Page> {
        let page = Arc::new(Page::render(items, t));
        if self.enabled && ids.len() <= PAGE_MAX {
            let key = PageKey {
                kind: PageKind::Videos,
                owner: 0,
                ids: ids.into(),
            };
            self.pages.insert(key, PageVal::Videos(page.clone()));
        }
        page
    }
}

impl NearCache {
    /// Video `id`'s card, if held and current (an out-of-date one counts as a miss).
    pub fn card(&self, id: i64) -> Option<Arc<Card>> {
        let card = match self.lookup_uncounted(NearKey::Card(id)) {
            Some(NearVal::Card(c)) => Some(c),
            _ => None,
        }
        .filter(|c| self.card_deps_current(c));
        self.hit(card.is_some());
        card
    }

    /// Whether neither the card's video nor its author was invalidated since it was rendered.
    fn card_deps_current(&self, c: &Card) -> bool {
        let head = c.head();
        head.deps
            .iter()
            .all(|b| self.stamps[*b as usize].load(Ordering::Acquire) <= head.ticket)
    }

    /// The held cards of the long list `ids`, if current (see [`CardRun`]).
    pub fn card_run(&self, ids: &[i64]) -> Option<Arc<CardRun>> {
        let PageVal::Cards(run) = self.held(PageKind::Cards, 0, ids)? else {
            return None;
        };
        let deps = run.deps.iter().map(|b| *b as usize);
        self.current(run.built, deps, run.ticket).then_some(run)
    }

    /// Keeps `cards` as the run of the long list `ids` (every one of them found: a list with
    /// an unknown video is not kept), `t` taken before any of them was looked up or rendered:
    /// an invalidation of any of them since makes the run out of date.
    pub fn keep_card_run(&self, ids: &[i64], cards: &[Arc<Card>], t: Ticket) {
        if !self.enabled || cards.len() != ids.len() {
            return;
        }
        let mut deps: Vec<u32> = cards.iter().flat_map(|c| c.head().deps).collect();
        deps.sort_unstable();
        deps.dedup();
        let run = CardRun {
            deps: deps.into(),
            ticket: t.0,
            built: cards
                .iter()
                .map(|c| c.built())
                .min()
                .unwrap_or_else(Instant::now),
            cards: cards.iter().map(Arc::downgrade).collect(),
        };
        let key = PageKey {
            kind: PageKind::Cards,
            owner: 0,
            ids: ids.into(),
        };
        self.pages.insert(key, PageVal::Cards(Arc::new(run)));
    }

    /// Renders video `v` with its author `a` (both looked up after ticket `t` was taken) as a
    /// card, kept unless either was invalidated after `t`.
    pub fn install_card(&self, v: &VideoEntry, a: &UserEntry, t: Ticket) -> Arc<Card> {
        let size = HEAD + v.head().len() + FALSE + AUTHOR.len() + v.rest().len();
        let mut bytes = Vec::with_capacity(size);
        bytes.extend_from_slice(&[0; HEAD]);
        let fav = write_video_head(&mut bytes, v, false) - HEAD;
        let split = bytes.len() - HEAD;
        bytes.extend_from_slice(v.rest());
        let (vk, ak) = (NearKey::Video(v.id), NearKey::User(a.data.id));
        let head = CardHead {
            video: v.id,
            author: a.data.id,
            ticket: t.0,
            built: epoch().elapsed().as_nanos() as u64,
            fav: fav as u32,
            split: split as u32,
            follow: a.follow,
            // stamp buckets are below STAMPS
            deps: [vk.bucket() as u32, ak.bucket() as u32],
        };
        bytes[..HEAD].copy_from_slice(&head.encode());
        let card = Arc::new(Card {
            bytes: bytes.into(),
            author: a.json.clone(),
        });
        if self.installable(&vk, t) && self.installable(&ak, t) {
            self.entries
                .insert(NearKey::Card(v.id), NearVal::Card(card.clone()));
        }
        card
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{near, user};
    use super::*;
    use crate::api::reply::{User, Video};
    use crate::model::{Urls, UserData, VideoData};
    use std::time::Duration;

    std::thread_local! {
        /// The data each test's videos were installed from (an entry keeps only its JSON).
        static DATA: std::cell::RefCell<std::collections::HashMap<i64, VideoData>> =
            Default::default();
    }

    /// Installs video `d`, remembering its data for [`serialised`].
    fn install(n: &NearCache, d: VideoData, t: Ticket) -> Arc<VideoEntry> {
        let e = n.install_video(&d, t);
        DATA.with(|m| m.borrow_mut().insert(d.id, d));
        e
    }

    /// `items` as serde writes them (the reference), with the given flags, parsed.
    fn serialised(
        items: &[(Arc<VideoEntry>, Arc<UserEntry>)],
        liked: &[bool],
        follows: &[bool],
    ) -> simd_json::OwnedValue {
        let urls = Urls::new("http://h".into());
        let videos: Vec<Video> = items
            .iter()
            .enumerate()
            .map(|(i, (v, a))| {
                let d = DATA.with(|m| m.borrow()[&v.id].clone());
                Video {
                    id: d.id,
                    author: User::from_data(&a.data, follows[i]),
                    play_url: urls.play(&d),
                    cover_url: urls.cover(&d),
                    favorite_count: d.favorite_count,
                    comment_count: d.comment_count,
                    play_count: d.play_count,
                    is_favorite: liked[i],
                    title: d.title,
                    desc: d.desc,
                }
            })
            .collect();
        let mut json = simd_json::to_vec(&videos).unwrap();
        simd_json::to_owned_value(&mut json).unwrap()
    }

    fn parsed(mut json: Vec<u8>) -> simd_json::OwnedValue {
        simd_json::to_owned_value(&mut json).unwrap()
    }

    #[test]
    fn rendered_page_equals_serialised_videos() {
        let n = near(Duration::from_secs(60), 10);
        let u = n.install_user(user(), n.begin());
        let d = VideoData {
            id: 99,
            author_id: 7,
            title: "t \\ \"x\"".into(),
            desc: "d".into(),
            play: "videos/99.mp4".into(),
            cover: String::new(),
            favorite_count: 3,
            comment_count: 2,
            play_count: 1,
        };
        let items = vec![(install(&n, d, n.begin()), u)];
        let page = n.render_page(&[99], &items, n.begin());
        let mut ours = Vec::new();
        page.write(&mut ours, &[true], &[false]);
        assert_eq!(parsed(ours), serialised(&items, &[true], &[false]));
        assert_eq!(
            parsed(page.anonymous().to_vec()),
            serialised(&items, &[false], &[false])
        );
        // written with the flags themselves
        for (liked, follows) in [(true, false), (false, true), (true, true)] {
            let mut direct = Vec::new();
            write_items(&mut direct, &items, &[liked], &[follows], |_, _| {});
            assert_eq!(parsed(direct), serialised(&items, &[liked], &[follows]));
        }
    }

    type Items = Vec<(Arc<VideoEntry>, Arc<UserEntry>)>;

    /// Videos `ids` by user 7, installed with their author, and their cards.
    fn carded(n: &NearCache, ids: &[i64]) -> (Items, Vec<Arc<Card>>) {
        let t = n.begin();
        let a = n.install_user(user(), t);
        let items: Items = ids
            .iter()
            .map(|&id| {
                let v = VideoData {
                    id,
                    author_id: 7,
                    title: format!("v{id} \"q\""),
                    play: format!("videos/{id}.mp4"),
                    ..Default::default()
                };
                (install(n, v, t), a.clone())
            })
            .collect();
        let cards = items.iter().map(|(v, a)| n.install_card(v, a, t)).collect();
        (items, cards)
    }

    #[test]
    fn cards_write_a_long_list_and_go_out_of_date_with_their_video_or_author() {
        let n = near(Duration::from_secs(60), 10);
        let (items, cards) = carded(&n, &[1, 2]);
        let mut out = Vec::new();
        write_cards(&mut out, &cards, &[true, false], &[false, true]);
        assert_eq!(
            parsed(out),
            serialised(&items, &[true, false], &[false, true])
        );
        let held = n.card(2).expect("installed");
        assert_eq!((held.video(), held.author()), (2, 7));
        // the video changes: its card is out of date (a miss, not a hit), the other one is not
        let hits = n.stats.hits.load(Ordering::Relaxed);
        let misses = n.stats.misses.load(Ordering::Relaxed);
        n.invalidate(NearKey::Video(2));
        assert!(n.card(2).is_none());
        assert_eq!(n.stats.hits.load(Ordering::Relaxed), hits);
        assert_eq!(n.stats.misses.load(Ordering::Relaxed), misses + 1);
        assert!(n.card(1).is_some());
        // the author changes: both are
        n.invalidate(NearKey::User(7));
        assert!(n.card(1).is_none());
        // a card rendered from entries looked up before an invalidation is not kept
        let t = n.begin();
        let (v, a) = (&items[0].0, &items[0].1);
        n.invalidate(NearKey::User(7));
        n.install_card(v, a, t);
        assert!(n.card(1).is_none());
        n.install_card(v, a, n.begin());
        assert!(n.card(1).is_some());
    }

    /// Users 7 and 8 installed, 8 named `name` (text that looks like the flags around it).
    fn two_authors(n: &NearCache, t: Ticket, name: &str) -> (Arc<UserEntry>, Arc<UserEntry>) {
        let a = n.install_user(user(), t);
        let b = UserData {
            id: 8,
            name: name.into(),
            signature: "é\u{1F600}".into(),
            ..Default::default()
        };
        (a, n.install_user(b, t))
    }

    /// Video `id` by `author`, titled `title`.
    fn titled(id: i64, author: i64, title: &str) -> VideoData {
        VideoData {
            id,
            author_id: author,
            title: title.into(),
            play: format!("videos/{id}.mp4"),
            ..Default::default()
        }
    }

    #[test]
    fn cards_share_their_authors_json_and_write_each_with_its_flags() {
        let n = near(Duration::from_secs(60), 10);
        let t = n.begin();
        let (a, b) = two_authors(&n, t, "false \"is_follow\":false");
        let video = |id, author| titled(id, author, "false,\"author\":");
        let items: Items = [(1, &a), (2, &b), (3, &a), (4, &b)]
            .into_iter()
            .map(|(id, u)| (install(&n, video(id, u.data.id), t), u.clone()))
            .collect();
        let cards: Vec<Arc<Card>> = items.iter().map(|(v, u)| n.install_card(v, u, t)).collect();
        // one copy of an author's JSON, theirs, whatever the number of their cards
        assert!(Arc::ptr_eq(&cards[0].author, &a.json));
        assert!(Arc::ptr_eq(&cards[2].author, &a.json));
        assert!(Arc::ptr_eq(&cards[1].author, &b.json));
        for (liked, follows) in [
            ([false; 4], [false; 4]),
            ([true; 4], [true; 4]),
            ([true, false, false, true], [false, true, true, false]),
        ] {
            let mut ours = Vec::new();
            write_cards(&mut ours, &cards, &liked, &follows);
            assert_eq!(parsed(ours), serialised(&items, &liked, &follows));
        }
        // an anonymous reader's: every flag false
        let mut ours = Vec::new();
        write_cards(&mut ours, &cards, &[], &[]);
        assert_eq!(parsed(ours), serialised(&items, &[false; 4], &[false; 4]));
    }

    #[test]
    fn a_cards_head_reads_back_as_written() {
        let head = CardHead {
            video: (1 << 53) - 1,
            author: -5,
            ticket: u64::MAX - 1,
            built: 123_456_789,
            fav: 70_000,
            split: 70_030,
            follow: 3,
            deps: [(super::super::STAMPS - 1) as u32, 0],
        };
        assert_eq!(CardHead::decode(&head.encode()), head);
        // a card rendered now is as young as the entries it came from
        let n = near(Duration::from_secs(60), 10);
        let (_, cards) = carded(&n, &[5]);
        assert!(cards[0].built().elapsed() < Duration::from_secs(5));
        assert_eq!((cards[0].video(), cards[0].author()), (5, 7));
    }

    #[test]
    fn a_run_of_cards_gives_its_cards_and_goes_out_of_date_with_any_of_them() {
        let n = near(Duration::from_secs(60), 10);
        let ids = [1, 2, 3];
        let (items, cards) = carded(&n, &ids);
        n.keep_card_run(&ids, &cards, n.begin());
        let run = n.card_run(&ids).expect("kept");
        assert!(n.card_run(&[1, 2]).is_none());
        let held = run.cards().expect("all held");
        assert_eq!(held.len(), 3);
        for (h, c) in held.iter().zip(&cards) {
            assert!(Arc::ptr_eq(h, c));
        }
        let (liked, follows) = ([true, false, true], [false, true, false]);
        let mut ours = Vec::new();
        write_cards(&mut ours, &held, &liked, &follows);
        assert_eq!(parsed(ours), serialised(&items, &liked, &follows));

        // a card no longer held anywhere: the run has none to give
        let gone = {
            let c = Arc::new((*cards[0]).clone());
            let mut held = cards.clone();
            held[1] = c.clone();
            n.keep_card_run(&[9, 8, 7], &held, n.begin());
            n.card_run(&[9, 8, 7]).expect("kept")
        };
        assert!(gone.cards().is_none());

        // a list with a card missing is not kept
        n.keep_card_run(&[1, 2, 4], &cards[..2], n.begin());
        assert!(n.card_run(&[1, 2, 4]).is_none());

        // a video changes, or an author: out of date
        n.invalidate(NearKey::Video(3));
        assert!(n.card_run(&ids).is_none());
        n.keep_card_run(&ids, &cards, n.begin());
        assert!(n.card_run(&ids).is_some());
        n.invalidate(NearKey::User(7));
        assert!(n.card_run(&ids).is_none());
        // kept from cards looked up before an invalidation: out of date at once
        let t = n.begin();
        n.invalidate(NearKey::Video(1));
        n.keep_card_run(&ids, &cards, t);
        assert!(n.card_run(&ids).is_none());
    }

    #[test]
    fn a_viewers_page_is_the_anonymous_one_with_their_flags() {
        let n = near(Duration::from_secs(60), 10);
        let t = n.begin();
        let (a, b) = two_authors(&n, t, "false");
        let video = |id, author| titled(id, author, "false \"false\"");
        let items = vec![
            (install(&n, video(1, 7), t), a.clone()),
            (install(&n, video(2, 8), t), b.clone()),
        ];
        let page = n.render_page(&[1, 2, 3], &items, t);
        let mut ours = Vec::new();
        page.write(&mut ours, &[true, false], &[false, true]);
        assert_eq!(
            parsed(ours),
            serialised(&items, &[true, false], &[false, true])
        );
        assert_eq!(&*page.videos, &[1, 2]);
        assert_eq!(&*page.authors, &[7, 8]);

        // held until one of its videos or authors is invalidated
        assert!(n.page(&[1, 2, 3]).is_some());
        assert!(n.page(&[1, 2]).is_none());
        n.invalidate(NearKey::User(8));
        assert!(n.page(&[1, 2, 3]).is_none());

        // a longer list is rendered for its request only
        let long: Vec<i64> = (1..=PAGE_MAX as i64 + 1).collect();
        let held = n.pages.len();
        let page = n.render_page(&long, &items, n.begin());
        assert_eq!(&*page.videos, &[1, 2]);
        assert_eq!(n.pages.len(), held);
    }
}
