// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"net/http"

	"github.com/kesbridge/kes/internal/cache"
	"github.com/prometheus/client_golang/prometheus"
)

// opsMetrics are the metrics minio/kes did not have: KMIP, keystore,
// cache, rotation and re-wrap. They live in a registry of their own and
// survive reloads (a reload does not reset a counter).
// examples/grafana/kes.json charts them; a test checks that each metric
// it uses exists.
type opsMetrics struct {
	reg *prometheus.Registry

	kmipMetrics
	keystoreMetrics
	rotationMetrics

	// cache is handed to the cache of every state.
	cache *cache.Counters
}

func newOpsMetrics() *opsMetrics {
	reg := prometheus.NewRegistry()
	m := &opsMetrics{reg: reg, cache: &cache.Counters{}}
	m.kmipMetrics.register(reg)
	m.keystoreMetrics.register(reg)
	m.rotationMetrics.register(reg)
	reg.MustRegister(cacheCollector{m.cache})
	return m
}

// gatherer returns what GET /v1/metrics serves. kes-go and kms-go
// reject a response with a family they do not know that holds more than
// one series (every labelled family here), and they send no Accept
// header; Prometheus and other scrapers always send one. So a request
// without Accept gets the minio/kes families only, and any other gets
// these families too.
func (s *Server) gatherer(r *http.Request) prometheus.Gatherer {
	if len(r.Header.Values("Accept")) == 0 {
		return s.metrics.reg
	}
	return prometheus.Gatherers{s.metrics.reg, s.ops.reg}
}
