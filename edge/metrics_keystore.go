// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/kesbridge/kes/keystore"
	"github.com/prometheus/client_golang/prometheus"
)

// keystoreMetrics count the calls the server makes to its keystore.
type keystoreMetrics struct {
	ksCalls   *prometheus.CounterVec
	ksLatency *prometheus.HistogramVec
	ksUp      *prometheus.GaugeVec
	ksOutages *prometheus.CounterVec
	ksTokens  *prometheus.CounterVec
}

func (m *keystoreMetrics) register(reg prometheus.Registerer) {
	m.ksCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kes", Subsystem: "keystore", Name: "calls_total",
		Help: "Number of keystore calls by driver, operation and result (success, not_found, exists, conflict, unreachable, unavailable, error).",
	}, []string{"driver", "operation", "result"})
	m.ksLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "kes", Subsystem: "keystore", Name: "call_duration_seconds",
		Help:    "Time one keystore call took, in seconds.",
		Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15},
	}, []string{"driver", "operation"})
	m.ksUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "kes", Subsystem: "keystore", Name: "up",
		Help: "1 if the keystore answered its last call normally, 0 if it was unreachable or unavailable.",
	}, []string{"driver"})
	m.ksOutages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kes", Subsystem: "keystore", Name: "outages_total",
		Help: "Number of times the keystore went from answering to unreachable or unavailable.",
	}, []string{"driver"})
	m.ksTokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kes", Subsystem: "keystore", Name: "token_renewals_total",
		Help: "Number of access token renewals of the keystore driver (KeyControl, HPCS, Vault) by result (success, unreachable, unavailable, error).",
	}, []string{"driver", "result"})
	reg.MustRegister(m.ksCalls, m.ksLatency, m.ksUp, m.ksOutages, m.ksTokens)
}

// instrument returns store with every call counted under driver. The
// wrapper forwards the store's capabilities; Unwrap returns store.
func (m *keystoreMetrics) instrument(store keystore.Store, driver string) keystore.Store {
	s := &meteredStore{Store: store, m: m, driver: driver}
	m.ksOutages.WithLabelValues(driver)
	// Present from the start, at zero, for every driver: a dashboard
	// query finds the family before the first renewal (or on a driver
	// without tokens).
	m.ksTokens.WithLabelValues(driver, "success")
	m.ksTokens.WithLabelValues(driver, "error")
	return s
}

// tokenObserver returns the keystore.TokenObserver that counts the token
// renewals of driver.
func (m *keystoreMetrics) tokenObserver(driver string) keystore.TokenObserver {
	return func(err error) { m.ksTokens.WithLabelValues(driver, result(err)).Inc() }
}

// meteredStore is a keystore.Store that records each call's result and
// latency. The embedded Store provides String.
type meteredStore struct {
	keystore.Store
	m      *keystoreMetrics
	driver string

	mu   sync.Mutex
	down bool // the last call found the keystore unreachable or unavailable
}

// Unwrap returns the store being measured.
func (s *meteredStore) Unwrap() keystore.Store { return s.Store }

// Capabilities are those of the measured store.
func (s *meteredStore) Capabilities() keystore.Capabilities { return keystore.CapabilitiesOf(s.Store) }

// result names the outcome of a call for the result label.
func result(err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, keystore.ErrKeyNotFound):
		return "not_found"
	case errors.Is(err, keystore.ErrKeyExists):
		return "exists"
	case errors.Is(err, keystore.ErrConflict):
		return "conflict"
	case keystore.IsUnreachable(err):
		return "unreachable"
	case keystore.IsUnavailable(err):
		return "unavailable"
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "error"
	}
}

func (s *meteredStore) observe(op string, start time.Time, err error) {
	r := result(err)
	s.m.ksCalls.WithLabelValues(s.driver, op, r).Inc()
	s.m.ksLatency.WithLabelValues(s.driver, op).Observe(time.Since(start).Seconds())
	var down bool
	switch r {
	case "unreachable", "unavailable":
		down = true
	case "canceled", "error":
		return // says nothing about the keystore
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if down && !s.down {
		s.m.ksOutages.WithLabelValues(s.driver).Inc()
	}
	s.down = down
	up := 1.0
	if down {
		up = 0
	}
	s.m.ksUp.WithLabelValues(s.driver).Set(up)
}

func (s *meteredStore) Create(ctx context.Context, name string, value []byte) error {
	start := time.Now()
	err := s.Store.Create(ctx, name, value)
	s.observe("create", start, err)
	return err
}

func (s *meteredStore) Get(ctx context.Context, name string) ([]byte, error) {
	start := time.Now()
	v, err := s.Store.Get(ctx, name)
	s.observe("get", start, err)
	return v, err
}

func (s *meteredStore) Replace(ctx context.Context, name string, old, value []byte) error {
	start := time.Now()
	err := s.Store.Replace(ctx, name, old, value)
	s.observe("replace", start, err)
	return err
}

func (s *meteredStore) Delete(ctx context.Context, name string) error {
	start := time.Now()
	err := s.Store.Delete(ctx, name)
	s.observe("delete", start, err)
	return err
}

func (s *meteredStore) List(ctx context.Context, prefix string) ([]string, error) {
	start := time.Now()
	names, err := s.Store.List(ctx, prefix)
	s.observe("list", start, err)
	return names, err
}

func (s *meteredStore) Status(ctx context.Context) (keystore.State, error) {
	start := time.Now()
	st, err := s.Store.Status(ctx)
	s.observe("status", start, err)
	return st, err
}
