//! Professionals, clients and API tokens.

use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::ops::Bound;

use crate::MemoryStore;
use crate::sync::read;
use crate::sync::write;
use async_trait::async_trait;
use booking_core::Schedule;
use booking_core::search::{EARTH_RADIUS_KM, GeoFilter, search_document};
use booking_core::store::DirectoryStore;
use booking_core::store::ScheduleStore;
use booking_core::store::{Cursor, Page, ProfessionalQuery, Registered};
use booking_core::{
    Category, Client, ClientId, Entity, Error, GeoPoint, Principal, Professional, ProfessionalId,
    ProfessionalPatch, Result, TokenHash,
};
use chrono::{DateTime, Utc};
use rstar::RTree;
use rstar::primitives::GeomWithData;

/// The directory; one read-write lock guards all of it (writes are rare and short).
#[derive(Debug, Default)]
pub(crate) struct Directory {
    professionals: HashMap<ProfessionalId, Professional>,
    /// Search order `(hourly_rate_cents, id)`.
    by_rate: BTreeSet<(i64, ProfessionalId)>,
    /// Every professional as a point on the unit sphere: a radius search visits them
    /// nearest first (chord order is great-circle order) and stops early.
    spatial: RTree<Spatial>,
    /// The same points, one tree per category: a radius search with a category walks only
    /// that category's professionals (at 1M over 20 categories, ~45 visits for a page of
    /// 20 instead of ~900).
    spatial_by_category: HashMap<Category, RTree<Spatial>>,
    /// Every byte trigram of a professional's search document (see
    /// `booking_core::search::search_document`) -> the professionals whose document holds
    /// it, in search order `(hourly_rate_cents, id)`. A text query walks the list of its
    /// rarest trigram instead of every professional.
    trigrams: HashMap<[u8; 3], BTreeSet<(i64, ProfessionalId)>>,
    clients: HashMap<ClientId, Client>,
    tokens: HashMap<TokenHash, Principal>,
    /// The subject each idempotent create request stored (see `request_ref`).
    requests: HashMap<String, Principal>,
}

impl Directory {
    /// The subject stored by `request_ref`, if any.
    fn stored_by(&self, request_ref: Option<&str>) -> Option<Principal> {
        self.requests.get(request_ref?).copied()
    }

    pub(crate) fn insert_professional(
        &mut self,
        p: &Professional,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Professional>> {
        match self.stored_by(request_ref) {
            Some(Principal::Professional(id)) => {
                let existing = self.professionals.get(&id).ok_or_else(|| {
                    Error::Internal("a request reference names a missing professional".into())
                })?;
                return Ok(Registered::Existing(existing.clone()));
            }
            Some(Principal::Client(_)) => return Err(Error::AlreadyExists(Entity::Professional)),
            None => {}
        }
        if self.professionals.contains_key(&p.id) || self.tokens.contains_key(&token) {
            return Err(Error::AlreadyExists(Entity::Professional));
        }
        let principal = Principal::Professional(p.id);
        self.tokens.insert(token, principal);
        if let Some(r) = request_ref {
            self.requests.insert(r.to_owned(), principal);
        }
        self.by_rate.insert((p.hourly_rate_cents, p.id));
        self.index_place(p);
        self.index_text(p);
        self.professionals.insert(p.id, p.clone());
        Ok(Registered::Created(p.clone()))
    }

    pub(crate) fn professional(&self, id: ProfessionalId) -> Option<&Professional> {
        self.professionals.get(&id)
    }

    pub(crate) fn update_professional(
        &mut self,
        id: ProfessionalId,
        patch: &ProfessionalPatch,
        now: DateTime<Utc>,
    ) -> Result<Professional> {
        let current = self
            .professionals
            .get(&id)
            .ok_or(Error::NotFound(Entity::Professional))?
            .clone();
        let next = current.apply_patch(patch, now)?;
        if next.hourly_rate_cents != current.hourly_rate_cents {
            self.by_rate.remove(&(current.hourly_rate_cents, id));
            self.by_rate.insert((next.hourly_rate_cents, id));
        }
        if (next.location, &next.category) != (current.location, &current.category) {
            self.unindex_place(&current);
            self.index_place(&next);
        }
        if (&next.name, &next.category, next.hourly_rate_cents)
            != (&current.name, &current.category, current.hourly_rate_cents)
        {
            self.unindex_text(&current);
            self.index_text(&next);
        }
        self.professionals.insert(id, next.clone());
        Ok(next)
    }

    /// Adds `p`'s point to the spatial tree and to its category's.
    fn index_place(&mut self, p: &Professional) {
        let entry = spatial_entry(p.location, p.id);
        self.spatial.insert(entry);
        self.spatial_by_category
            .entry(p.category.clone())
            .or_default()
            .insert(entry);
    }

    /// Removes `p`'s point from the spatial tree and from its category's.
    fn unindex_place(&mut self, p: &Professional) {
        let entry = spatial_entry(p.location, p.id);
        self.spatial.remove(&entry);
        if let Some(tree) = self.spatial_by_category.get_mut(&p.category) {
            tree.remove(&entry);
            if tree.size() == 0 {
                self.spatial_by_category.remove(&p.category);
            }
        }
    }

    fn index_text(&mut self, p: &Professional) {
        for t in trigrams(&search_document(&p.name, p.category.as_str())) {
            self.trigrams
                .entry(t)
                .or_default()
                .insert((p.hourly_rate_cents, p.id));
        }
    }

    fn unindex_text(&mut self, p: &Professional) {
        for t in trigrams(&search_document(&p.name, p.category.as_str())) {
            if let Some(list) = self.trigrams.get_mut(&t) {
                list.remove(&(p.hourly_rate_cents, p.id));
                if list.is_empty() {
                    self.trigrams.remove(&t);
                }
            }
        }
    }

    /// The search order to walk for `query`: the rarest trigram's list when a term has
    /// three bytes or more (a superset of the matches: every match holds every trigram of
    /// every term), else every professional.
    fn walk_order(&self, query: &ProfessionalQuery) -> Option<&BTreeSet<(i64, ProfessionalId)>> {
        let text = query.text.as_ref()?;
        let mut best: Option<&BTreeSet<(i64, ProfessionalId)>> = None;
        for term in text.terms() {
            for t in trigrams(term) {
                let list = self.trigrams.get(&t).unwrap_or(&EMPTY);
                if best.is_none_or(|b| list.len() < b.len()) {
                    best = Some(list);
                }
            }
        }
        best
    }

    /// Without a geo filter `O(log n + scanned)`: walks the `(rate, id)` order from the
    /// cursor or the minimum rate and stops past the maximum rate. With one, visits
    /// professionals nearest first and stops after the page (see `search_near`).
    pub(crate) fn search(&self, query: &ProfessionalQuery) -> Result<Page<Professional>> {
        let limit = booking_core::store::check_limit(query.limit)? as usize;
        if let Some(near) = &query.near {
            return Ok(self.search_near(query, near, limit));
        }
        let lower = rate_walk_start(query.after, query.min_rate_cents);
        let mut items = Vec::with_capacity(limit + 1);
        let order = self.walk_order(query).unwrap_or(&self.by_rate);
        for (rate, id) in order.range((lower, Bound::Unbounded)) {
            if items.len() > limit || query.max_rate_cents.is_some_and(|m| *rate > m) {
                break;
            }
            if let Some(p) = self.professionals.get(id).filter(|p| query.matches(p)) {
                items.push(p.clone());
            }
        }
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(Cursor::after_professional)
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// The `limit + 1` smallest `(distance_mm, id)` keys after the cursor among the
    /// matching professionals, kept in a bounded max-heap. Professionals are visited in
    /// chord order from the centre (the same order as great-circle distance); the walk stops
    /// once the next one is certainly past the radius or past the worst key kept.
    fn search_near(
        &self,
        query: &ProfessionalQuery,
        near: &GeoFilter,
        limit: usize,
    ) -> Page<Professional> {
        let radius_mm = near.radius_mm() as f64;
        let mut best: BinaryHeap<(Cursor, ProfessionalId)> = BinaryHeap::with_capacity(limit + 2);
        let centre = unit_vector(near.center());
        let tree = match &query.category {
            None => Some(&self.spatial),
            Some(c) => self.spatial_by_category.get(c),
        };
        let walk = tree
            .into_iter()
            .flat_map(|t| t.nearest_neighbor_iter_with_distance_2(centre));
        for (entry, chord_2) in walk {
            let lower = lower_bound_mm(chord_2.sqrt());
            if lower > radius_mm {
                break;
            }
            if best.len() > limit
                && best
                    .peek()
                    .is_some_and(|(top, _)| lower > top.primary as f64)
            {
                break;
            }
            let Some(p) = self.professionals.get(&entry.data) else {
                continue;
            };
            if !query.matches(p) || !query.is_after_cursor(p) {
                continue;
            }
            let key = query.sort_key(p);
            if best.len() <= limit {
                best.push((key, p.id));
            } else if best.peek().is_some_and(|(top, _)| key < *top) {
                best.pop();
                best.push((key, p.id));
            }
        }
        let mut items: Vec<Professional> = best
            .into_sorted_vec()
            .into_iter()
            .filter_map(|(_, id)| self.professionals.get(&id).cloned())
            .collect();
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|p| query.sort_key(p))
        } else {
            None
        };
        Page { items, next_cursor }
    }

    pub(crate) fn insert_client(
        &mut self,
        c: &Client,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Client>> {
        match self.stored_by(request_ref) {
            Some(Principal::Client(id)) => {
                let existing = self.clients.get(&id).ok_or_else(|| {
                    Error::Internal("a request reference names a missing client".into())
                })?;
                return Ok(Registered::Existing(existing.clone()));
            }
            Some(Principal::Professional(_)) => return Err(Error::AlreadyExists(Entity::Client)),
            None => {}
        }
        if self.clients.contains_key(&c.id) || self.tokens.contains_key(&token) {
            return Err(Error::AlreadyExists(Entity::Client));
        }
        let principal = Principal::Client(c.id);
        self.tokens.insert(token, principal);
        if let Some(r) = request_ref {
            self.requests.insert(r.to_owned(), principal);
        }
        self.clients.insert(c.id, c.clone());
        Ok(Registered::Created(c.clone()))
    }

    pub(crate) fn client(&self, id: ClientId) -> Option<&Client> {
        self.clients.get(&id)
    }

    pub(crate) fn principal(&self, token: &TokenHash) -> Option<Principal> {
        self.tokens.get(token).copied()
    }

    /// Checks that the search order matches the professionals and that every request
    /// reference names a stored subject.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        let ok = self.by_rate.len() == self.professionals.len()
            && self.spatial.size() == self.professionals.len()
            && self
                .spatial_by_category
                .values()
                .map(RTree::size)
                .sum::<usize>()
                == self.professionals.len()
            && self.professionals.values().all(|p| {
                let entry = spatial_entry(p.location, p.id);
                self.by_rate.contains(&(p.hourly_rate_cents, p.id))
                    && self.spatial.contains(&entry)
                    && self
                        .spatial_by_category
                        .get(&p.category)
                        .is_some_and(|t| t.contains(&entry))
                    && trigrams(&search_document(&p.name, p.category.as_str()))
                        .iter()
                        .all(|t| {
                            self.trigrams
                                .get(t)
                                .is_some_and(|l| l.contains(&(p.hourly_rate_cents, p.id)))
                        })
            })
            && self.trigrams.values().map(BTreeSet::len).sum::<usize>()
                == self
                    .professionals
                    .values()
                    .map(|p| trigrams(&search_document(&p.name, p.category.as_str())).len())
                    .sum::<usize>();
        if !ok {
            return Err("professional search order out of step".into());
        }
        let stored = |p: &Principal| match p {
            Principal::Professional(id) => self.professionals.contains_key(id),
            Principal::Client(id) => self.clients.contains_key(id),
        };
        if self.requests.values().all(stored) {
            Ok(())
        } else {
            Err("a request reference names a missing subject".into())
        }
    }
}

/// An empty trigram list (a trigram no document holds).
static EMPTY: BTreeSet<(i64, ProfessionalId)> = BTreeSet::new();

/// Where a walk of the `(rate, id)` order starts: just after the cursor or at the minimum
/// rate, whichever is later.
fn rate_walk_start(after: Option<Cursor>, min_rate: Option<i64>) -> Bound<(i64, ProfessionalId)> {
    let from_cursor = after.map(|c| (c.primary, ProfessionalId::from_uuid(c.id)));
    let from_min = min_rate.map(|m| (m, ProfessionalId::from_uuid(uuid::Uuid::nil())));
    crate::keyset::walk_start(from_cursor, from_min)
}

/// The distinct byte trigrams of `text`.
fn trigrams(text: &str) -> std::collections::HashSet<[u8; 3]> {
    text.as_bytes()
        .windows(3)
        .map(|w| [w[0], w[1], w[2]])
        .collect()
}

/// `p` on the unit sphere.
fn unit_vector(p: GeoPoint) -> [f64; 3] {
    let (lat, lng) = (p.lat.to_radians(), p.lng.to_radians());
    [lat.cos() * lng.cos(), lat.cos() * lng.sin(), lat.sin()]
}

/// A professional's point in a spatial tree.
type Spatial = GeomWithData<[f64; 3], ProfessionalId>;

fn spatial_entry(p: GeoPoint, id: ProfessionalId) -> Spatial {
    GeomWithData::new(unit_vector(p), id)
}

/// A lower bound of `distance_mm` for a point at `chord` (unit sphere) from the centre:
/// the exact great-circle distance of that chord, less a margin for rounding in either
/// formula (both are accurate to far below a millimetre).
fn lower_bound_mm(chord: f64) -> f64 {
    let km = 2.0 * EARTH_RADIUS_KM * (chord / 2.0).min(1.0).asin();
    km * 1e6 * (1.0 - 1e-9) - 2.0
}

#[async_trait]
impl DirectoryStore for MemoryStore {
    async fn insert_professional(
        &self,
        professional: &Professional,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Professional>> {
        write(&self.directory).insert_professional(professional, token, request_ref)
    }

    async fn get_professional(&self, id: ProfessionalId) -> Result<Option<Professional>> {
        Ok(read(&self.directory).professional(id).cloned())
    }

    async fn update_professional(
        &self,
        id: ProfessionalId,
        patch: &ProfessionalPatch,
        now: DateTime<Utc>,
    ) -> Result<Professional> {
        write(&self.directory).update_professional(id, patch, now)
    }

    async fn search_professionals(&self, query: &ProfessionalQuery) -> Result<Page<Professional>> {
        read(&self.directory).search(query)
    }

    async fn insert_client(
        &self,
        client: &Client,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Client>> {
        write(&self.directory).insert_client(client, token, request_ref)
    }

    async fn get_client(&self, id: ClientId) -> Result<Option<Client>> {
        Ok(read(&self.directory).client(id).cloned())
    }

    async fn principal_for_token(&self, token: TokenHash) -> Result<Option<Principal>> {
        Ok(read(&self.directory).principal(&token))
    }
}

#[async_trait]
impl ScheduleStore for MemoryStore {
    async fn put_schedule(
        &self,
        professional_id: ProfessionalId,
        schedule: &Schedule,
    ) -> Result<()> {
        // Professionals are never deleted, so checking first and writing after (two leaf
        // locks, one at a time) cannot race with a removal.
        if read(&self.directory)
            .professional(professional_id)
            .is_none()
        {
            return Err(Error::NotFound(Entity::Professional));
        }
        write(&self.schedules).insert(professional_id, schedule.clone());
        Ok(())
    }

    async fn get_schedule(&self, professional_id: ProfessionalId) -> Result<Option<Schedule>> {
        Ok(read(&self.schedules).get(&professional_id).cloned())
    }
}

#[cfg(all(test, not(booking_loom)))]
mod tests {
    use booking_core::NewProfessional;
    use booking_core::search::TextQuery;
    use chrono::TimeZone;

    use super::*;

    /// A directory with one professional (and one create request) that passes `check`.
    fn directory() -> (Directory, Professional) {
        let now = Utc
            .with_ymd_and_hms(2027, 3, 1, 8, 0, 0)
            .single()
            .expect("a valid instant");
        let p = NewProfessional {
            name: "Ada Lovelace".into(),
            category: "massage".into(),
            location: GeoPoint::new(52.5, 13.4).expect("a valid point"),
            hourly_rate_cents: 5_000,
            currency: "eur".into(),
            timezone: "UTC".into(),
            is_active: None,
        }
        .validate(ProfessionalId::new_at(now), now)
        .expect("a valid professional");
        let mut d = Directory::default();
        d.insert_professional(&p, TokenHash::of("ada"), Some("req-1"))
            .expect("insert");
        d.check().expect("consistent");
        (d, p)
    }

    /// A radius search with a category walks that category's tree: a professional who
    /// changes category (or moves) is found under the new one and place only.
    #[test]
    fn a_change_of_category_or_place_moves_the_point_between_trees() {
        let (mut d, p) = directory();
        let near = |lat: f64, lng: f64, category: &str| {
            let mut q = ProfessionalQuery::all(10);
            q.near = Some(GeoFilter::new(lat, lng, 5.0).expect("a valid filter"));
            q.category = Some(Category::parse(category).expect("slug"));
            q
        };
        let found = |d: &Directory, q: &ProfessionalQuery| {
            d.search(q)
                .expect("search")
                .items
                .iter()
                .map(|x| x.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(found(&d, &near(52.5, 13.4, "massage")), vec![p.id]);
        let patch = ProfessionalPatch {
            category: Some("yoga".into()),
            ..ProfessionalPatch::default()
        };
        d.update_professional(p.id, &patch, p.created_at)
            .expect("update");
        d.check().expect("consistent after a change of category");
        assert_eq!(found(&d, &near(52.5, 13.4, "massage")), vec![]);
        assert_eq!(found(&d, &near(52.5, 13.4, "yoga")), vec![p.id]);
        assert!(
            !d.spatial_by_category.contains_key(&p.category),
            "an emptied category's tree is dropped"
        );

        let patch = ProfessionalPatch {
            location: Some(GeoPoint::new(48.85, 2.35).expect("a valid point")),
            ..ProfessionalPatch::default()
        };
        d.update_professional(p.id, &patch, p.created_at)
            .expect("update");
        d.check().expect("consistent after a move");
        assert_eq!(found(&d, &near(52.5, 13.4, "yoga")), vec![]);
        assert_eq!(found(&d, &near(48.85, 2.35, "yoga")), vec![p.id]);
    }

    #[test]
    fn a_rate_walk_starts_at_the_later_of_cursor_and_minimum_rate() {
        let id = ProfessionalId::new_at(DateTime::<Utc>::UNIX_EPOCH);
        let nil = ProfessionalId::from_uuid(uuid::Uuid::nil());
        let cursor = |primary| {
            Some(Cursor {
                primary,
                id: id.as_uuid(),
            })
        };
        assert_eq!(rate_walk_start(None, None), Bound::Unbounded);
        assert_eq!(
            rate_walk_start(None, Some(200)),
            Bound::Included((200, nil))
        );
        assert_eq!(
            rate_walk_start(cursor(300), None),
            Bound::Excluded((300, id))
        );
        assert_eq!(
            rate_walk_start(cursor(100), Some(200)),
            Bound::Included((200, nil))
        );
        assert_eq!(
            rate_walk_start(cursor(300), Some(200)),
            Bound::Excluded((300, id))
        );
        assert_eq!(
            rate_walk_start(cursor(200), Some(200)),
            Bound::Excluded((200, id))
        );
    }

    /// A text query walks the shortest trigram list among its terms' trigrams.
    #[test]
    fn a_text_query_walks_its_rarest_trigram() {
        let (mut d, ada) = directory();
        let now = ada.created_at;
        for name in ["Ada Byron", "Ada King", "Adam Smith"] {
            let mut p = ada.clone();
            p.id = ProfessionalId::new_at(now);
            p.name = name.into();
            d.insert_professional(&p, TokenHash::of(name), None)
                .expect("insert");
        }
        let walk = |text: &str| {
            let mut query = ProfessionalQuery::all(10);
            query.text = Some(TextQuery::parse(text).expect("a valid query"));
            d.walk_order(&query).map(BTreeSet::len)
        };
        // "ada" is in all four documents; "love" only in Ada Lovelace's.
        assert_eq!(walk("ada"), Some(4));
        assert_eq!(walk("ada love"), Some(1));
        assert_eq!(walk("love ada"), Some(1));
        assert_eq!(walk("zzz ada"), Some(0), "a trigram no document holds");
        assert_eq!(d.walk_order(&ProfessionalQuery::all(10)), None);
    }

    /// The walk's geometry: points on the unit sphere, and a bound that is below the
    /// exact distance (so the walk never stops before a match) by at most a few
    /// millimetres (so it stops soon after the last one).
    #[test]
    fn unit_vectors_and_the_distance_bound() {
        let close = |a: [f64; 3], b: [f64; 3]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        let at = |lat, lng| GeoPoint { lat, lng };
        assert!(close(unit_vector(at(0.0, 0.0)), [1.0, 0.0, 0.0]));
        assert!(close(unit_vector(at(0.0, 90.0)), [0.0, 1.0, 0.0]));
        assert!(close(unit_vector(at(90.0, 0.0)), [0.0, 0.0, 1.0]));
        assert!(close(
            unit_vector(at(-45.0, 180.0)),
            [-0.5f64.sqrt(), 0.0, -0.5f64.sqrt()]
        ));
        let centre = at(52.520008, 13.404954);
        for other in [
            at(52.520008, 13.404954),
            at(52.5219, 13.4132),
            at(52.3906, 13.0645),
            at(48.8566, 2.3522),
            at(-33.8688, 151.2093),
            at(-52.520008, -166.595046),
        ] {
            let (a, b) = (unit_vector(centre), unit_vector(other));
            let chord = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).powi(2))
                .sum::<f64>()
                .sqrt();
            let exact_mm = booking_core::search::distance_km(centre, other) * 1e6;
            let bound = lower_bound_mm(chord);
            assert!(bound <= exact_mm, "{bound} above {exact_mm}");
            assert!(bound >= exact_mm - 50.0, "{bound} far below {exact_mm}");
        }
    }

    /// `check`, which `MemoryStore::check_invariants` and so every model run relies on,
    /// spots each index drifting from the professionals.
    #[test]
    fn check_spots_every_index_out_of_step() {
        let out_of_step = "professional search order out of step";
        let (mut d, _) = directory();
        d.by_rate.clear();
        assert_eq!(d.check(), Err(out_of_step.into()));

        let (mut d, p) = directory();
        d.by_rate.remove(&(p.hourly_rate_cents, p.id));
        d.by_rate.insert((p.hourly_rate_cents + 1, p.id));
        assert_eq!(d.by_rate.len(), 1);
        assert_eq!(d.check(), Err(out_of_step.into()), "same size, wrong entry");

        let (mut d, p) = directory();
        d.spatial.remove(&spatial_entry(p.location, p.id));
        d.spatial
            .insert(spatial_entry(GeoPoint { lat: 0.0, lng: 0.0 }, p.id));
        assert_eq!(d.spatial.size(), 1);
        assert_eq!(d.check(), Err(out_of_step.into()), "moved in the tree only");

        // The point in another category's tree: every size still adds up.
        let (mut d, p) = directory();
        let tree = d.spatial_by_category.remove(&p.category).expect("indexed");
        d.spatial_by_category
            .insert(Category::parse("tax-advice").expect("slug"), tree);
        assert_eq!(
            d.check(),
            Err(out_of_step.into()),
            "in the wrong category's tree"
        );

        let (mut d, p) = directory();
        if let Some(tree) = d.spatial_by_category.get_mut(&p.category) {
            tree.remove(&spatial_entry(p.location, p.id));
        }
        assert_eq!(
            d.check(),
            Err(out_of_step.into()),
            "missing from its category's tree"
        );

        // A stray entry in one trigram list: every professional still finds all of its
        // trigrams, only the totals differ.
        let (mut d, p) = directory();
        let stray = ProfessionalId::new_at(p.created_at);
        if let Some(list) = d.trigrams.values_mut().next() {
            list.insert((p.hourly_rate_cents, stray));
        }
        assert_eq!(d.check(), Err(out_of_step.into()), "a stray trigram entry");

        let (mut d, _) = directory();
        let t = *d.trigrams.keys().next().expect("indexed");
        d.trigrams.remove(&t);
        assert_eq!(d.check(), Err(out_of_step.into()), "a missing trigram");

        let (mut d, p) = directory();
        d.professionals.remove(&p.id);
        assert!(d.check().is_err(), "indexes of a missing professional");

        let (mut d, p) = directory();
        d.requests.insert(
            "req-2".into(),
            Principal::Client(ClientId::new_at(p.created_at)),
        );
        assert_eq!(
            d.check(),
            Err("a request reference names a missing subject".into())
        );
    }
}
