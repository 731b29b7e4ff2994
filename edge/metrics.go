// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"math"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the Prometheus metrics of minio/kes, with the same names,
// types, labels and buckets, in a registry of their own (no Go or process
// collectors: kes-go expects exactly these families). Families without
// labels hold exactly one metric, which kes-go requires.
type metrics struct {
	reg *prometheus.Registry

	success *prometheus.CounterVec
	errors  *prometheus.CounterVec
	failure *prometheus.CounterVec
	active  prometheus.Gauge
	latency prometheus.Histogram

	// byCode caches the counter of each status code: looking it up by
	// label (hashing, a lock) on every request costs more than counting.
	byCode [600]atomic.Pointer[prometheus.Counter]

	auditEvents  prometheus.Counter
	errorEvents  prometheus.Counter
	auditDropped prometheus.Counter
	errorDropped prometheus.Counter
}

func newMetrics(started time.Time) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.success = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kes", Subsystem: "http", Name: "request_success",
		Help: "Number of API requests answered with a 2xx status.",
	}, []string{"code"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kes", Subsystem: "http", Name: "request_error",
		Help: "Number of API requests answered with a 4xx status.",
	}, []string{"code"})
	m.failure = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kes", Subsystem: "http", Name: "request_failure",
		Help: "Number of API requests answered with a 5xx status.",
	}, []string{"code"})
	m.active = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "kes", Subsystem: "http", Name: "request_active",
		Help: "Number of API requests being served right now.",
	})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "kes", Subsystem: "http", Name: "response_time",
		Help:    "Time to answer an API request, in seconds.",
		Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 3, 5, 10},
	})
	m.auditEvents = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "kes", Subsystem: "log", Name: "audit_events",
		Help: "Number of audit events delivered to audit log subscribers.",
	})
	m.errorEvents = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "kes", Subsystem: "log", Name: "error_events",
		Help: "Number of error events delivered to error log subscribers.",
	})
	m.auditDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "kes", Subsystem: "log", Name: "audit_events_dropped",
		Help: "Number of audit events not delivered because a subscriber fell behind.",
	})
	m.errorDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "kes", Subsystem: "log", Name: "error_events_dropped",
		Help: "Number of error events not delivered because a subscriber fell behind.",
	})
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "kes", Subsystem: "system", Name: name, Help: help}, f)
	}
	memStats := func(f func(*runtime.MemStats) uint64) func() float64 {
		return func() float64 {
			var s runtime.MemStats
			runtime.ReadMemStats(&s)
			return float64(f(&s))
		}
	}
	m.reg.MustRegister(
		m.success, m.errors, m.failure, m.active, m.latency,
		m.auditEvents, m.errorEvents, m.auditDropped, m.errorDropped,
		gauge("up_time", "Time the server has been up, in seconds.", func() float64 {
			return math.Round(time.Since(started).Seconds()*100) / 100
		}),
		gauge("num_cpu", "Number of CPUs of the host.", func() float64 { return float64(runtime.NumCPU()) }),
		gauge("num_cpu_used", "Number of CPUs the server may use (GOMAXPROCS).", func() float64 { return float64(runtime.GOMAXPROCS(0)) }),
		gauge("num_threads", "Number of goroutines.", func() float64 { return float64(runtime.NumGoroutine()) }),
		gauge("mem_heap_used", "Bytes of allocated heap objects.", memStats(func(s *runtime.MemStats) uint64 { return s.HeapAlloc })),
		gauge("mem_heap_objects", "Number of allocated heap objects.", memStats(func(s *runtime.MemStats) uint64 { return s.HeapObjects })),
		gauge("mem_stack_used", "Bytes of stack memory obtained from the OS.", memStats(func(s *runtime.MemStats) uint64 { return s.StackSys })),
	)
	return m
}

// observe counts one finished request. Statuses outside 2xx/4xx/5xx are
// not counted (minio/kes panics on them).
func (m *metrics) observe(code int, took time.Duration) {
	if code < 200 || code >= 600 || (code >= 300 && code < 400) {
		return
	}
	p := m.byCode[code].Load()
	if p == nil {
		var vec *prometheus.CounterVec
		switch {
		case code < 300:
			vec = m.success
		case code < 500:
			vec = m.errors
		default:
			vec = m.failure
		}
		c := vec.WithLabelValues(strconv.Itoa(code))
		p = &c
		m.byCode[code].Store(p) // a racing Store stores the same counter
	}
	(*p).Inc()
	m.latency.Observe(took.Seconds())
}

func (c *call) metrics() {
	promhttp.HandlerFor(c.srv.gatherer(c.r), promhttp.HandlerOpts{DisableCompression: true}).ServeHTTP(c.w, c.r)
}
