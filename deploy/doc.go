// Package deploy holds the container image and the Kubernetes manifests,
// and tests that check them against the server.
//
// It has no code of its own: Containerfile and rootfs/ are the image (built
// by make image), k8s/ the kustomize manifests. manifests_test.go renders
// k8s/ with kubectl kustomize and holds it to what the built server's -h
// lists and serves; image_test.go (make image-test) takes the binary out of
// the built image and runs it. monitoring/ is the Grafana dashboard and
// the Prometheus alert rules that k8s/ ships as ConfigMaps;
// monitoring_test.go checks them with promtool and against a real
// Prometheus scraping the server.
package deploy
