// Package deploy holds the deployment room: the container image
// (Dockerfile), the compose sandbox (compose.yaml), the Helm chart
// (helm/orthotriage) with its alert rules, and the tests that render the
// chart with Helm and check every object strictly against the Kubernetes
// API types, offline. It has no code the service uses: Helm, the
// Kubernetes types and the parsers are test dependencies only.
package deploy
