"""Trace simulator: replays a request trace against autoscaling policies in simulated time.

Pure apart from reading the trace and the manifest (command.py); never imports kopf, the
kubernetes client, modelfleet.kube, handlers, dev.cluster or dev.engine. The rules, in short
(docs/simulate.md has them in full):

- Arrivals come from the trace, relative to its first row, divided by the time scale (trace.py).
- Each replica is a ReplicaEngine (modelfleet.perf.engine) of the deployment's placement, planned
  as `modelfleet plan --all-gpus` does.
- Router: random over ready, non-draining replicas (what a Kubernetes Service does; seeded), or
  least-outstanding / round-robin; requests longer than the context are refused (a miss);
  with none ready, requests wait in a router queue and the wait counts in their TTFT (fleet.py).
- Scale-up: a replica is ready after the start-up delay and costs from its creation. Scale-down:
  loading replicas first, then the most recently ready; a removed ready replica drains its
  in-flight requests and costs until the last one finishes. GPU-hours = replica-seconds x GPUs
  per replica / 3600 (metrics.py).
- Policies (policies.py, runner.py): modelfleet calls autoscale.policy.decide() every
  intervalSeconds with LoadSamples from the replicas' engine load, exactly as the operator does;
  static-peak is the fewest fixed replicas meeting the SLO-attainment target; inflight is
  KubeAI-style; keda-queue is KEDA/HPA on the waiting requests; oracle and hourly are
  clairvoyants that obey the same rules (start-up ordered ahead and paid, load carried over).
"""
