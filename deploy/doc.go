// Package deploy holds no code: deploy/ is the files that run hubmon
// (systemd units, nfpm package configurations, Mosquitto, Prometheus and
// Grafana configurations). Its tests check the release builds made from them:
// the static binaries of `make dist`, run under qemu-user on ARM, and the
// Debian packages of `make deb`, installed in a throwaway root.
//
// They need Debian's cross compilers, qemu-user-static and dpkg (.ci/run
// installs them) and skip without them, unless HUBMON_REQUIRE_DIST is set
// (`make test` sets it), when they fail instead.
package deploy
