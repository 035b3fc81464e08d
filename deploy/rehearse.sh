#!/usr/bin/env bash
# Rehearses a kustomize overlay on this machine, without Kubernetes or containers: renders it with `kubectl kustomize`,
# runs a throwaway PostgreSQL, the migration Job's command and the silo pods as processes (each on its own loopback
# address, with the Deployment's environment, ports and probes), publishes a workload through a stand-in for the
# gateway Service while scaling 3 → 5 → 2 pods and restarting them one at a time, and checks the results table
# against the windowing engine. Exit code 0 when nothing differs.
#
#   deploy/rehearse.sh                                   # the dev overlay, 3 minutes
#   deploy/rehearse.sh --minutes 1 --keys 200 --rate 1000 --drain-delay 00:00:02    # the test suite's short run
#
# Needs the .NET SDK, kubectl and PostgreSQL server binaries (see the README). The rehearsal itself is the tools'
# `rehearse` command (tests/Orleans.Pipeline.Tools/Rehearse.cs), which reuses the chaos command's producer and
# reference check, and runs the silo built beside the tools.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
dotnet build tests/Orleans.Pipeline.Tools -c Release --nologo -v quiet
exec dotnet tests/Orleans.Pipeline.Tools/bin/Release/net10.0/orleans-pipeline-tools.dll rehearse --overlay deploy/k8s/overlays/dev "$@"
