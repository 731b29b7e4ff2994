// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"github.com/kesbridge/kes/internal/cache"
	"github.com/prometheus/client_golang/prometheus"
)

// cacheCollector exposes the key cache's counters. They are read at
// scrape time: the cache's hot path only adds to atomics.
type cacheCollector struct{ c *cache.Counters }

var (
	cacheHitsDesc      = prometheus.NewDesc("kes_cache_hits_total", "Number of key lookups answered from the cache.", nil, nil)
	cacheMissesDesc    = prometheus.NewDesc("kes_cache_misses_total", "Number of key lookups that read the keystore.", nil, nil)
	cacheEvictionsDesc = prometheus.NewDesc("kes_cache_evictions_total", "Number of cached keys evicted because they expired.", nil, nil)
	cacheOfflineDesc   = prometheus.NewDesc("kes_cache_offline_serves_total", "Number of key lookups answered with an expired key while the keystore was unreachable (offline mode).", nil, nil)
	cacheSizeDesc      = prometheus.NewDesc("kes_cache_size", "Number of keys cached right now.", nil, nil)
)

func (cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cacheHitsDesc, cacheMissesDesc, cacheEvictionsDesc, cacheOfflineDesc, cacheSizeDesc} {
		ch <- d
	}
}

func (c cacheCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(cacheHitsDesc, prometheus.CounterValue, float64(c.c.Hits()))
	ch <- prometheus.MustNewConstMetric(cacheMissesDesc, prometheus.CounterValue, float64(c.c.Misses()))
	ch <- prometheus.MustNewConstMetric(cacheEvictionsDesc, prometheus.CounterValue, float64(c.c.Evictions()))
	ch <- prometheus.MustNewConstMetric(cacheOfflineDesc, prometheus.CounterValue, float64(c.c.OfflineServes()))
	ch <- prometheus.MustNewConstMetric(cacheSizeDesc, prometheus.GaugeValue, float64(c.c.Size()))
}
