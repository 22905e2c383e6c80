"""Engine emulator and load generator: vLLM/SGLang/llama.cpp stand-ins on the local cluster.

`emulator` watches the cluster's modelfleet engine pods and, for each Ready pod, serves the
OpenAI-compatible API, /health and /metrics on the pod's IP and port 8000, with the timing of
`modelfleet.perf.engine.ReplicaEngine`. `load` sends streaming completions to a deployment's pods.
Never imported by the operator.
"""
