// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"github.com/prometheus/client_golang/prometheus"
)

// rotationMetrics implement keys.Progress: key rotation and re-wrap
// report each key through Service.Progress and these count them.
type rotationMetrics struct {
	rotations     *prometheus.CounterVec
	rewraps       *prometheus.CounterVec
	rewrapPending prometheus.Gauge
}

func (m *rotationMetrics) register(reg prometheus.Registerer) {
	m.rotations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kes", Subsystem: "key", Name: "rotations_total",
		Help: "Number of key rotations by result (success or error).",
	}, []string{"result"})
	m.rewraps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kes", Subsystem: "key", Name: "rewraps_total",
		Help: "Number of stored keys re-wrapped by result (success or error).",
	}, []string{"result"})
	m.rewrapPending = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "kes", Subsystem: "key", Name: "rewrap_pending",
		Help: "Number of keys a running re-wrap still has to do.",
	})
	// Both results exist from the start, so that dashboards and alerts
	// see a zero rather than no data.
	for _, r := range []string{"success", "error"} {
		m.rotations.WithLabelValues(r)
		m.rewraps.WithLabelValues(r)
	}
	reg.MustRegister(m.rotations, m.rewraps, m.rewrapPending)
}

func resultLabel(err error) string {
	if err != nil {
		return "error"
	}
	return "success"
}

// Rotated implements keys.Progress.
func (m *rotationMetrics) Rotated(err error) { m.rotations.WithLabelValues(resultLabel(err)).Inc() }

// Rewrapped implements keys.Progress.
func (m *rotationMetrics) Rewrapped(err error) { m.rewraps.WithLabelValues(resultLabel(err)).Inc() }

// RewrapPending implements keys.Progress.
func (m *rotationMetrics) RewrapPending(n int) { m.rewrapPending.Set(float64(max(n, 0))) }
