// podcheck judges each pod template as a cluster would: the Dapr sidecar added by Dapr's
// own injector code (its patch, from the pod's dapr.io annotations and the injector's
// settings read from the environment, as the Helm chart sets them), then Kubernetes' own
// Pod Security admission code at the "restricted" level (latest version).
//
// Input (stdin): a JSON list of {"name", "namespace", "template"} (a Deployment's pod
// template). Output (stdout): a JSON list of {"name", "containers", "ports" (every
// container port of the injected pod), "allowed", "forbidden"}.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/dapr/dapr/pkg/injector/patcher"
	"github.com/dapr/dapr/pkg/injector/service"
	corev1 "k8s.io/api/core/v1"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

type input struct {
	Name      string                 `json:"name"`
	Namespace string                 `json:"namespace"`
	Template  corev1.PodTemplateSpec `json:"template"`
}

type verdict struct {
	Name       string   `json:"name"`
	Containers []string `json:"containers"`
	Ports      []int32  `json:"ports"`
	Allowed    bool     `json:"allowed"`
	Forbidden  string   `json:"forbidden"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "podcheck:", err)
		os.Exit(1)
	}
}

func run() error {
	var pods []input
	if err := json.NewDecoder(os.Stdin).Decode(&pods); err != nil {
		return fmt.Errorf("reading the pods: %w", err)
	}
	config, err := service.GetConfig()
	if err != nil {
		return fmt.Errorf("the injector's settings: %w", err)
	}
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks())
	if err != nil {
		return err
	}
	level := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	verdicts := []verdict{}
	for _, in := range pods {
		pod, err := injected(config, in)
		if err != nil {
			return fmt.Errorf("%s: %w", in.Name, err)
		}
		result := policy.AggregateCheckResults(evaluator.EvaluatePod(level, &pod.ObjectMeta, &pod.Spec))
		names, ports := []string{}, []int32{}
		for _, c := range pod.Spec.Containers {
			names = append(names, c.Name)
			for _, p := range c.Ports {
				ports = append(ports, p.ContainerPort)
			}
		}
		verdicts = append(verdicts, verdict{in.Name, names, ports, result.Allowed, result.ForbiddenDetail()})
	}
	return json.NewEncoder(os.Stdout).Encode(verdicts)
}

// injected is the pod after the patch Dapr's injector would make (the settings that
// shape the sidecar's security, as pkg/injector/service/pod_patch.go sets them).
func injected(config service.Config, in input) (*corev1.Pod, error) {
	pod := &corev1.Pod{ObjectMeta: in.Template.ObjectMeta, Spec: in.Template.Spec}
	pod.Name, pod.Namespace = in.Name, in.Namespace
	sidecar := patcher.NewSidecarConfig(pod)
	sidecar.Namespace = in.Namespace
	sidecar.MTLSEnabled = true
	sidecar.Identity = in.Namespace + ":" + pod.Spec.ServiceAccountName
	sidecar.ImagePullPolicy = config.GetPullPolicy()
	sidecar.RunAsNonRoot = config.GetRunAsNonRoot()
	sidecar.RunAsUser = config.GetRunAsUser()
	sidecar.RunAsGroup = config.GetRunAsGroup()
	sidecar.ReadOnlyRootFilesystem = config.GetReadOnlyRootFilesystem()
	sidecar.EnableK8sDownwardAPIs = config.GetEnableK8sDownwardAPIs()
	sidecar.SidecarDropALLCapabilities = config.GetDropCapabilities()
	sidecar.EnableNativeSidecar = config.GetNativeSidecarEnabled()
	sidecar.KubeClusterDomain = config.KubeClusterDomain
	sidecar.SidecarImage = config.SidecarImage
	sidecar.SetFromPodAnnotations()
	patch, err := sidecar.GetPatch()
	if err != nil {
		return nil, err
	}
	if len(patch) == 0 {
		return pod, nil
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	if raw, err = patch.Apply(raw); err != nil {
		return nil, err
	}
	patched := &corev1.Pod{}
	return patched, json.Unmarshal(raw, patched)
}
