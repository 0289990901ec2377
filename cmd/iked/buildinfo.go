package main

import (
	"github.com/iked/iked/internal/buildinfo"
	"github.com/prometheus/client_golang/prometheus"
)

// buildInfoGauge is iked_build_info: always 1, the build in its labels, as
// Prometheus' own *_build_info metrics.
func buildInfoGauge() prometheus.Collector {
	bi := buildinfo.Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "iked_build_info",
		Help: "The running iked's build: version, commit and Go version; always 1.",
		ConstLabels: prometheus.Labels{
			"version": bi.Version, "commit": bi.ShortCommit(), "goversion": bi.GoVersion,
		},
	})
	g.Set(1)
	return g
}
