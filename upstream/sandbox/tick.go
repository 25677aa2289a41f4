package sandbox

import (
	"context"
	"slices"
	"time"

	"github.com/compshare/imagegraph/upstream"
)

// tickState is what Tick remembers between ticks; Server.dataMu guards it.
type tickState struct {
	// done is the number of ticks so far.
	done int
	// ring is the versions Tick publishes in turn: those under review at
	// the first tick, in stored order but starting at EdgeReviewingImageID
	// when the dataset holds it. Nil before the first tick.
	ring []string
}

// TickResult says what one Tick changed; an empty id means that part of the
// tick changed nothing.
type TickResult struct {
	// Published is the version the tick moved from Reviewing to Available.
	Published string
	// SentBack is the version the tick moved from Available back to Reviewing.
	SentBack string
	// Group is the group whose FavoritesCount the tick raised by one, to
	// FavoritesCount.
	Group          string
	FavoritesCount int
}

// Tick makes one small change to the data, the same for the same tick
// number on the same dataset, so that a poller sees an event. Tick k (from
// 0):
//
//   - publishes ring[k mod n] (Reviewing → Available, PubTime now), where
//     the ring is the n versions under review at the first tick, in stored
//     order but starting at EdgeReviewingImageID, which the first tick of
//     the embedded dataset therefore publishes;
//   - from tick h = ⌈n/2⌉ on, sends back to review the version it published
//     h ticks earlier, ring[(k-h) mod n] (Available → Reviewing, PubTime 0),
//     so half the ring is under review again and the ring never runs out;
//     with n = 1 the one version is published on even ticks and sent back
//     on odd ones;
//   - raises by one the FavoritesCount of group k mod G in stored order, G
//     being the number of groups.
//
// Only a version under review is published and only an Available one sent
// back, so a version UpdateVersion moved elsewhere sits its turns out. A
// dataset with no version under review at the first tick only gets the
// favourites. The tick's changes are swapped in at once: a reader sees all
// of them or none.
func (s *Server) Tick() TickResult {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	idx := s.data.Load()
	if s.ticks.ring == nil {
		s.ticks.ring = reviewRing(idx)
	}
	k := s.ticks.done
	s.ticks.done++
	now := s.now()

	var res TickResult
	publish, sendBack := ringTurn(s.ticks.ring, k)
	var moved bool
	if idx, moved = idx.move(publish, upstream.ImageStatusReviewing, upstream.ImageStatusAvailable, now); moved {
		res.Published = publish
	}
	if idx, moved = idx.move(sendBack, upstream.ImageStatusAvailable, upstream.ImageStatusReviewing, now); moved {
		res.SentBack = sendBack
	}
	if len(idx.groups) > 0 {
		i := k % len(idx.groups)
		fav := idx.groups[i].FavoritesCount + 1
		idx = idx.changeGroup(i, GroupChange{FavoritesCount: &fav})
		res.Group, res.FavoritesCount = idx.groups[i].GroupId, fav
	}
	s.data.Store(idx)
	return res
}

// StartTicking calls Tick every interval, in a goroutine of its own, until
// ctx ends. An interval of 0 or less starts nothing, so a zero setting means
// off. Ticking is off unless started: a Server's data changes only when
// asked. Each call starts one more ticker.
func (s *Server) StartTicking(ctx context.Context, every time.Duration) {
	if every <= 0 {
		return
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.Tick()
			}
		}
	}()
}

// reviewRing returns the ids of the versions under review in idx, in stored
// order, rotated to start at EdgeReviewingImageID when idx holds it.
func reviewRing(idx *index) []string {
	ring := []string{}
	first := 0
	for _, g := range idx.groups {
		for _, img := range g.Data {
			if img.Status != upstream.ImageStatusReviewing {
				continue
			}
			if img.CompShareImageId == EdgeReviewingImageID {
				first = len(ring)
			}
			ring = append(ring, img.CompShareImageId)
		}
	}
	return slices.Concat(ring[first:], ring[:first])
}

// move returns idx with the version id moved from status from to status to,
// and whether it was; it is not when id is "", unknown or not in from.
func (idx *index) move(id, from, to string, now time.Time) (*index, bool) {
	at, ok := idx.versionAt[id]
	if id == "" || !ok || idx.groups[at.g].Data[at.v].Status != from {
		return idx, false
	}
	return idx.changeVersion(at, VersionChange{Status: &to}, now), true
}

// ringTurn returns the version tick k publishes and the one it sends back to
// review ("" for none).
func ringTurn(ring []string, k int) (publish, sendBack string) {
	n := len(ring)
	switch {
	case n == 0:
		return "", ""
	case n == 1 && k%2 == 1:
		return "", ring[0]
	case n == 1:
		return ring[0], ""
	}
	h := (n + 1) / 2
	if k >= h {
		sendBack = ring[(k-h)%n]
	}
	return ring[k%n], sendBack
}
