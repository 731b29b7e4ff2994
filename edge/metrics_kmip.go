// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"net"
	"sync/atomic"
	"time"

	kmipbridge "github.com/kesbridge/kes/kmip-bridge"
	"github.com/prometheus/client_golang/prometheus"
)

// kmipMetrics count the KMIP bridge's batch items and connections.
type kmipMetrics struct {
	kmipOps     *prometheus.CounterVec
	kmipLatency *prometheus.HistogramVec
	// kmipLive is the running bridge, read without locks by the
	// connection gauge and by /v1/status.
	kmipLive atomic.Pointer[kmipLive]
}

// kmipLive is what /v1/status and the metrics say about the bridge.
type kmipLive struct {
	srv  *kmipbridge.Server
	addr net.Addr
}

func (m *kmipMetrics) register(reg prometheus.Registerer) {
	m.kmipOps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kes", Subsystem: "kmip", Name: "operations_total",
		Help: "Number of KMIP batch items by operation and result (success or the KMIP result reason).",
	}, []string{"operation", "result"})
	m.kmipLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "kes", Subsystem: "kmip", Name: "operation_duration_seconds",
		Help:    "Time to run one KMIP batch item, in seconds.",
		Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"operation"})
	reg.MustRegister(m.kmipOps, m.kmipLatency, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "kes", Subsystem: "kmip", Name: "connections_open",
		Help: "Number of KMIP client connections open right now.",
	}, func() float64 {
		if l := m.kmipLive.Load(); l != nil {
			return float64(l.srv.Connections())
		}
		return 0
	}), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "kes", Subsystem: "kmip", Name: "connections_max",
		Help: "Limit on concurrent KMIP client connections (kmip.max_connections); 0 without a KMIP bridge.",
	}, func() float64 {
		if l := m.kmipLive.Load(); l != nil {
			return float64(l.srv.MaxConnections())
		}
		return 0
	}), prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "kes", Subsystem: "kmip", Name: "connections_refused_total",
		Help: "Number of KMIP client connections refused at the connection limit. Starts again from 0 when the KMIP bridge is restarted.",
	}, func() float64 {
		if l := m.kmipLive.Load(); l != nil {
			return float64(l.srv.Refused())
		}
		return 0
	}))
}

// kmipItem counts one batch item; reason is "" on success. Operations
// and reasons are fixed sets, so the labels stay bounded.
func (m *kmipMetrics) kmipItem(op, reason string, took time.Duration) {
	result := reason
	if result == "" {
		result = "success"
	}
	m.kmipOps.WithLabelValues(op, result).Inc()
	m.kmipLatency.WithLabelValues(op).Observe(took.Seconds())
}

// setKMIP records the running bridge (nil: none).
func (m *kmipMetrics) setKMIP(r *kmipRunner) {
	if r == nil {
		m.kmipLive.Store(nil)
		return
	}
	m.kmipLive.Store(&kmipLive{srv: r.srv, addr: r.ln.Addr()})
}
