package service

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are a node's Prometheus metrics, on a registry of its own (no
// global state: tests run several nodes in one process).
type Metrics struct {
	Registry *prometheus.Registry

	AccountsOwned     prometheus.Gauge
	AccountsConnected prometheus.Gauge
	AccountsIdle      prometheus.Gauge
	EventsPublished   *prometheus.CounterVec // by kind
	PublishLatency    prometheus.Histogram   // event handed over → JetStream acknowledged
	PublishFailures   prometheus.Counter
	Reconnects        prometheus.Counter
	AuthFailures      prometheus.Counter
	LeaseTakeovers    prometheus.Counter     // accounts acquired
	LeaseLosses       prometheus.Counter     // accounts lost or given back
	SinkDeliveries    *prometheus.CounterVec // by sink
	SinkFailures      *prometheus.CounterVec // by sink: failed tries
	SinkDeadLetters   *prometheus.CounterVec // by sink
}

// NewMetrics registers a node's metrics, with Go's and the process's, on a
// new registry.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry:          r,
		AccountsOwned:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "imapkit_accounts_owned", Help: "Accounts whose lease this node holds."}),
		AccountsConnected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "imapkit_accounts_connected", Help: "Owned accounts with a live IMAP connection."}),
		AccountsIdle:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "imapkit_accounts_idle", Help: "Owned accounts synced and waiting for changes."}),
		EventsPublished:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imapkit_events_published_total", Help: "Events acknowledged by JetStream, by kind."}, []string{"kind"}),
		PublishLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imapkit_publish_latency_seconds", Help: "From an event being made to JetStream acknowledging its publish.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		PublishFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "imapkit_publish_failures_total", Help: "Publishes that failed and were retried."}),
		Reconnects:      prometheus.NewCounter(prometheus.CounterOpts{Name: "imapkit_reconnects_total", Help: "IMAP connections lost and made again."}),
		AuthFailures:    prometheus.NewCounter(prometheus.CounterOpts{Name: "imapkit_auth_failures_total", Help: "Accounts stopped because the server refused their credentials."}),
		LeaseTakeovers:  prometheus.NewCounter(prometheus.CounterOpts{Name: "imapkit_lease_acquired_total", Help: "Account leases this node took."}),
		LeaseLosses:     prometheus.NewCounter(prometheus.CounterOpts{Name: "imapkit_lease_lost_total", Help: "Account leases this node lost or gave back."}),
		SinkDeliveries:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imapkit_sink_deliveries_total", Help: "Events a sink took, by sink."}, []string{"sink"}),
		SinkFailures:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imapkit_sink_failures_total", Help: "Failed tries of a sink, by sink."}, []string{"sink"}),
		SinkDeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imapkit_sink_dead_letters_total", Help: "Events a sink gave up on, by sink."}, []string{"sink"}),
	}
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.AccountsOwned, m.AccountsConnected, m.AccountsIdle, m.EventsPublished, m.PublishLatency, m.PublishFailures,
		m.Reconnects, m.AuthFailures, m.LeaseTakeovers, m.LeaseLosses, m.SinkDeliveries, m.SinkFailures, m.SinkDeadLetters)
	return m
}

// move follows an account from one state to another in the gauges of
// connected and idle accounts.
func (m *Metrics) move(from, to string) {
	connected := func(s string) bool { return s == StateSyncing || s == StateIdle }
	if connected(from) && !connected(to) {
		m.AccountsConnected.Dec()
	} else if !connected(from) && connected(to) {
		m.AccountsConnected.Inc()
	}
	if from == StateIdle && to != StateIdle {
		m.AccountsIdle.Dec()
	} else if from != StateIdle && to == StateIdle {
		m.AccountsIdle.Inc()
	}
}
