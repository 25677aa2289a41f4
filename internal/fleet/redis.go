// Package fleet lets the replicas of one deployment share, through Redis,
// what they must share to behave as one: the second tier of the response
// cache, the account's quota of upstream calls, the clients' rate limits and
// the store of automatic persisted queries.
//
// Redis is never needed for a correct answer. Every command has a short
// timeout; when one fails, the replica marks Redis down, logs it once, and
// carries on alone (its own cache, local limits) without waiting on Redis
// again until a probe in the background finds it back, which it logs once
// too. Each piece here implements an interface of the package it serves
// (cache.Tier, upstream.Limiter, access.Limiter, persisted.Store); the
// packages know nothing of Redis.
package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Timeouts of the connection to Redis: short, since no answer waits on it
// for long; a command that takes longer counts as Redis being down.
const (
	dialTimeout    = 250 * time.Millisecond
	commandTimeout = 100 * time.Millisecond
	probeInterval  = 500 * time.Millisecond
	heartbeatEvery = 2 * time.Second
	replicaTimeout = 10 * time.Second
)

// keyPrefix starts every key the fleet writes, so that one Redis can serve
// other things beside.
const keyPrefix = "imagegraph:"

// Redis is the connection the fleet shares, with its up or down state.
// Build it with Connect; safe for concurrent use.
type Redis struct {
	client *redis.Client
	log    *slog.Logger
	id     string

	up       atomic.Bool
	replicas atomic.Int64
	probing  atomic.Bool
	errors   atomic.Int64

	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// Connect parses rawURL (redis:// or rediss://, with a password and a db) and
// connects. Redis being unreachable is not an error: the replica starts
// alone and picks Redis up when it answers.
func Connect(rawURL string, log *slog.Logger) (*Redis, error) {
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		// A URL that does not parse comes back quoted whole, password and
		// all, in a *url.Error: only its reason is kept.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("fleet: REDIS_URL: %w", err)
	}
	opts.DialTimeout = dialTimeout
	opts.ReadTimeout = commandTimeout
	opts.WriteTimeout = commandTimeout
	opts.PoolTimeout = commandTimeout
	opts.MaxRetries = -1 // fail fast: a retry would double the wait
	opts.ContextTimeoutEnabled = true
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Redis{client: redis.NewClient(opts), log: log, id: replicaID()}
	r.replicas.Store(1)
	r.ctx, r.stop = context.WithCancel(context.Background())
	if err := r.ping(); err != nil {
		r.down(err)
	} else {
		r.up.Store(true)
		r.log.Info("redis connected: cache, quota, client limits and APQ shared with the fleet")
	}
	r.wg.Add(1)
	go r.heartbeats()
	return r, nil
}

// Close stops the background work and closes the connection.
func (r *Redis) Close() error {
	r.stop()
	r.wg.Wait()
	return r.client.Close()
}

// Up reports whether Redis answered last.
func (r *Redis) Up() bool { return r.up.Load() }

// Replicas is the number of replicas that reported themselves to Redis in
// the last few seconds (at least 1), as last seen: what the quota divides
// itself by while Redis is down.
func (r *Redis) Replicas() int { return int(max(r.replicas.Load(), 1)) }

// Stats are the connection's state and counters at one moment.
type Stats struct {
	// Up reports whether Redis answered last; Replicas is Replicas().
	Up       bool
	Replicas int
	// Errors counts the commands that failed since Connect (a key not
	// found is not a failure).
	Errors int64
}

// Stats returns the connection's state and counters, for metrics to read
// when they are scraped.
func (r *Redis) Stats() Stats {
	return Stats{Up: r.Up(), Replicas: r.Replicas(), Errors: r.errors.Load()}
}

// fail records that a command failed: Redis is down until a probe finds it
// back. redis.Nil (no such key) is an answer, not a failure.
func (r *Redis) fail(err error) {
	if err == nil || errors.Is(err, redis.Nil) {
		return
	}
	r.errors.Add(1)
	if r.up.CompareAndSwap(true, false) {
		r.down(err)
	}
}

// down says once that Redis went away (with err, why) and probes for it
// until it is back.
func (r *Redis) down(err error) {
	r.log.Warn("redis unavailable: this replica carries on alone (its own cache and limits) until it answers",
		slog.String("error", err.Error()))
	r.startProbing()
}

// startProbing pings Redis in the background until it answers.
func (r *Redis) startProbing() {
	if !r.probing.CompareAndSwap(false, true) {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer r.probing.Store(false)
		t := time.NewTicker(probeInterval)
		defer t.Stop()
		for {
			select {
			case <-r.ctx.Done():
				return
			case <-t.C:
			}
			if r.ping() == nil {
				r.up.Store(true)
				r.log.Info("redis back: sharing with the fleet again")
				return
			}
		}
	}()
}

func (r *Redis) ping() error {
	ctx, cancel := context.WithTimeout(r.ctx, commandTimeout)
	defer cancel()
	return r.client.Ping(ctx).Err()
}

// heartbeats reports this replica to Redis every few seconds and counts
// the replicas that did.
func (r *Redis) heartbeats() {
	defer r.wg.Done()
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		if r.Up() {
			r.heartbeat()
		}
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Redis) heartbeat() {
	ctx, cancel := context.WithTimeout(r.ctx, commandTimeout)
	defer cancel()
	now := time.Now()
	key := keyPrefix + "replicas"
	pipe := r.client.TxPipeline()
	pipe.ZAdd(ctx, key, redis.Z{Score: float64(now.UnixMilli()), Member: r.id})
	pipe.ZRemRangeByScore(ctx, key, "-inf", strconv.FormatInt(now.Add(-replicaTimeout).UnixMilli(), 10))
	card := pipe.ZCard(ctx, key)
	pipe.Expire(ctx, key, 2*replicaTimeout)
	if _, err := pipe.Exec(ctx); err != nil {
		r.fail(err)
		return
	}
	r.replicas.Store(card.Val())
}

// quiet silences go-redis's own logging (a line for every failed dial):
// this package says once that Redis is down, and once that it is back.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once

// replicaID names this process among the fleet's.
func replicaID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RedactURL returns rawURL with its password masked, for logs and -h.
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(a URL that does not parse)"
	}
	if _, has := u.User.Password(); !has {
		return u.String()
	}
	const mark = "REDACTEDPASSWORD" // what url escapes nothing of
	u.User = url.UserPassword(u.User.Username(), mark)
	return strings.Replace(u.String(), mark, "****", 1)
}
