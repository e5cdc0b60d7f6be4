// Package deploy holds what runs the gateway outside this repository: the container image
// (Dockerfile), the Kubernetes manifests (a Kustomize base, components and overlays) and the
// check CI runs without a container engine (ci-check.sh). It has no Go API; its tests render
// every kustomization, decode each manifest strictly into the Kubernetes API types and check
// that the manifests agree with the binary: environment variable names, ports, probe paths,
// the drain timeout and the caller policy.
package deploy
