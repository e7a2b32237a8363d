//go:build pprofdebug

// A build for measuring the collector, not for release:
//
//	go build -tags pprofdebug -o bin/hubmon-collector ./collector
//
// With HUBMON_PPROF_LISTEN=127.0.0.1:6061 in its environment (for the load
// benchmark: -collector-env HUBMON_PPROF_LISTEN=127.0.0.1:6061) it serves
// Go's profiles (net/http/pprof) on that address, on a listener of its own:
//
//	go tool pprof -top bin/hubmon-collector http://127.0.0.1:6061/debug/pprof/heap
//	curl -o cpu.pb.gz 'http://127.0.0.1:6061/debug/pprof/profile?seconds=20'
//
// Released builds leave it out: the profiles show the collector's internals
// to anyone who can reach the address, with no authentication.
// (bench/README.md, "Profiling the collector".)
package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

func init() {
	addr := os.Getenv("HUBMON_PPROF_LISTEN")
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		// said, and no more: a subcommand (backup) run beside the daemon
		// finds the address taken
		fmt.Fprintf(os.Stderr, "HUBMON_PPROF_LISTEN=%q: no profiles: %v\n", addr, err)
		return
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
}
