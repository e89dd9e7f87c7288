// Command gitops-oracle judges CceUpgradeWatch objects the way the GitOps tools
// do, by running those tools' own libraries instead of a model of them:
//
//   - kstatus: sigs.k8s.io/cli-utils' status.Compute (what cli-utils, kpt and
//     Flux's kstatus fork conclude for a custom resource);
//   - Flux: the healthCheckExprs of a Kustomization, read from the given file
//     and evaluated by github.com/fluxcd/pkg/runtime/cel's StatusReader, the
//     reader kustomize-controller hands its status poller; and, for a
//     Kustomization that lists the object in healthChecks without expressions,
//     Flux's kstatus fork (github.com/fluxcd/cli-utils status.Compute);
//   - Argo CD: a resource health Lua script run in gopher-lua exactly as Argo CD
//     runs it (the same libraries opened, `obj` built the same way, the result
//     read the same way).
//
// It reads one object, a JSON array of objects, or a List (`kubectl get -o
// json`) on stdin and prints a JSON array with one verdict per object. See
// hack/gitops-oracle, which builds and caches it.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"time"

	fluxengine "github.com/fluxcd/cli-utils/pkg/kstatus/polling/engine"
	fluxstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	fluxkustomize "github.com/fluxcd/pkg/apis/kustomize"
	fluxcel "github.com/fluxcd/pkg/runtime/cel"
	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

// Verdict is what one tool concludes about one object. Error is set when the
// tool could not judge it (Flux then waits, Argo CD shows Unknown).
type Verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Error   string `json:"error,omitempty"`
}

// Result is the oracle's line for one object.
type Result struct {
	Namespace string  `json:"namespace"`
	Name      string  `json:"name"`
	KStatus   Verdict `json:"kstatus"`
	Flux      Verdict `json:"flux"`
	// FluxKStatus: Flux's verdict without healthCheckExprs (plain healthChecks).
	FluxKStatus Verdict `json:"fluxKstatus"`
	ArgoCD      Verdict `json:"argocd"`
}

func main() {
	fluxFile := flag.String("flux", "", "a file of Flux Kustomizations; the one with spec.healthCheckExprs is used")
	argoHealth := flag.String("argocd-health", "", "an Argo CD resource health Lua script (health.lua)")
	flag.Parse()
	if *fluxFile == "" || *argoHealth == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: gitops-oracle --flux KUSTOMIZATIONS.yaml --argocd-health HEALTH.lua < objects.json")
		os.Exit(2)
	}
	if err := run(*fluxFile, *argoHealth, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "gitops-oracle: %v\n", err)
		os.Exit(1)
	}
}

func run(fluxFile, argoHealth string, in io.Reader, out io.Writer) error {
	healthChecks, err := readHealthCheckExprs(fluxFile)
	if err != nil {
		return err
	}
	newReader, err := fluxcel.NewStatusReader(healthChecks)
	if err != nil {
		return fmt.Errorf("%s: Flux would reject these healthCheckExprs: %w", fluxFile, err)
	}
	// The generic reader needs neither a RESTMapper nor a cluster reader when
	// it is handed the object itself (ReadStatusForObject).
	fluxReader := newReader(nil)
	script, err := os.ReadFile(argoHealth)
	if err != nil {
		return err
	}
	objects, err := readObjects(in)
	if err != nil {
		return err
	}
	results := make([]Result, 0, len(objects))
	for _, u := range objects {
		results = append(results, Result{
			Namespace:   u.GetNamespace(),
			Name:        u.GetName(),
			KStatus:     kstatusVerdict(u.DeepCopy()),
			Flux:        fluxVerdict(fluxReader, u.DeepCopy()),
			FluxKStatus: fluxKStatusVerdict(u.DeepCopy()),
			ArgoCD:      argoVerdict(u.DeepCopy(), string(script)),
		})
	}
	encoder := json.NewEncoder(out)
	encoder.SetIndent("", "  ")
	return encoder.Encode(results)
}

// readObjects decodes stdin as unstructured does for objects read from the API
// server: integers become int64, which matters to all three libraries.
func readObjects(in io.Reader) ([]*unstructured.Unstructured, error) {
	data, err := io.ReadAll(in)
	if err != nil {
		return nil, err
	}
	var decoded any
	if err := utiljson.Unmarshal(data, &decoded); err != nil {
		return nil, fmt.Errorf("stdin is not JSON: %w", err)
	}
	var items []any
	switch value := decoded.(type) {
	case []any:
		items = value
	case map[string]any:
		if list, ok := value["items"].([]any); ok {
			items = list
		} else {
			items = []any{value}
		}
	default:
		return nil, errors.New("stdin must hold an object, a List or an array of objects")
	}
	objects := make([]*unstructured.Unstructured, 0, len(items))
	for index, item := range items {
		object, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("item %d is not an object", index)
		}
		objects = append(objects, &unstructured.Unstructured{Object: object})
	}
	return objects, nil
}

// ---------------------------------------------------------------- kstatus

func kstatusVerdict(u *unstructured.Unstructured) Verdict {
	result, err := status.Compute(u)
	if err != nil {
		return Verdict{Status: status.UnknownStatus.String(), Error: err.Error()}
	}
	return Verdict{Status: result.Status.String(), Message: result.Message}
}

// ---------------------------------------------------------------- Flux

// fluxKStatusVerdict is what Flux's default status reader concludes for a
// custom resource it has no expressions for: its kstatus fork's Compute.
func fluxKStatusVerdict(u *unstructured.Unstructured) Verdict {
	result, err := fluxstatus.Compute(u)
	if err != nil {
		return Verdict{Status: fluxstatus.UnknownStatus.String(), Error: err.Error()}
	}
	return Verdict{Status: result.Status.String(), Message: result.Message}
}

// readHealthCheckExprs returns spec.healthCheckExprs of the one Kustomization
// in the file that has them, decoded into Flux's own type (unknown fields are
// an error: a misspelt key would silently drop an expression).
func readHealthCheckExprs(path string) ([]fluxkustomize.CustomHealthCheck, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	documents := utilyaml.NewYAMLReader(bufio.NewReader(file))
	var found []fluxkustomize.CustomHealthCheck
	for {
		document, err := documents.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var kustomization struct {
			Kind string `json:"kind"`
			Spec struct {
				HealthCheckExprs json.RawMessage `json:"healthCheckExprs"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(document, &kustomization); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if kustomization.Kind != "Kustomization" || kustomization.Spec.HealthCheckExprs == nil {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("%s: more than one Kustomization has healthCheckExprs", path)
		}
		decoder := json.NewDecoder(bytes.NewReader(kustomization.Spec.HealthCheckExprs))
		decoder.DisallowUnknownFields()
		if err := decoder.Decode(&found); err != nil {
			return nil, fmt.Errorf("%s: spec.healthCheckExprs: %w", path, err)
		}
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%s: no Kustomization with spec.healthCheckExprs", path)
	}
	return found, nil
}

// fluxVerdict is the ResourceStatus kustomize-controller's poller gets for the
// object. Followed: fluxcd/kustomize-controller at 186fb3b29138,
// internal/controller/kustomization_controller.go (cel.NewStatusReader(
// obj.Spec.HealthCheckExprs) becomes one of the poller's CustomStatusReaders),
// and fluxcd/pkg/runtime/cel's StatusEvaluator.Evaluate (an observedGeneration
// behind metadata.generation is InProgress; then inProgress, failed, current in
// that order; nothing true is InProgress). How Flux acts on it (fluxcd/pkg
// ssa/manager_wait.go): Current passes; Failed ends the wait at once as a failed
// health check; InProgress and Unknown (an expression that fails to evaluate)
// wait until the Kustomization's timeout.
func fluxVerdict(reader fluxengine.StatusReader, u *unstructured.Unstructured) Verdict {
	resourceStatus, err := reader.ReadStatusForObject(context.Background(), nil, u)
	if err != nil {
		return Verdict{Status: fluxstatus.UnknownStatus.String(), Error: err.Error()}
	}
	verdict := Verdict{Status: resourceStatus.Status.String(), Message: resourceStatus.Message}
	if resourceStatus.Error != nil {
		verdict.Error = resourceStatus.Error.Error()
	}
	return verdict
}

// ---------------------------------------------------------------- Argo CD
//
// Followed: argoproj/argo-cd at 37ee0097cf851bc2dd7665fc081bbce61a7e836e,
// util/lua/lua.go (runLuaWithResourceActionParameters, ExecuteHealthLua,
// isValidHealthStatusCode, decodeValue) and gitops-engine/pkg/health/health.go
// (GetResourceHealth), with the versions its go.mod pins: gopher-lua v1.1.2,
// layeh.com/gopher-json.

const (
	argoInvalidHealthStatus = "Lua returned an invalid health status"
	// gitops-engine/pkg/sync/hook: a hook's finalizer keeps a deleted hook judged by its script.
	argoHookFinalizer = "argocd.argoproj.io/hook-finalizer"
)

func argoVerdict(u *unstructured.Unstructured, script string) Verdict {
	if u.GetDeletionTimestamp() != nil && !slices.Contains(u.GetFinalizers(), argoHookFinalizer) {
		return Verdict{Status: "Progressing", Message: "Pending deletion"}
	}
	health, err := argoExecuteHealthLua(u, script)
	if err != nil {
		return Verdict{Status: "Unknown", Message: err.Error(), Error: err.Error()}
	}
	return health
}

func argoExecuteHealthLua(u *unstructured.Unstructured, script string) (Verdict, error) {
	// Argo CD runs customisations without the open libraries (UseOpenLibs is
	// false unless the override sets it) and then opens package, base, table
	// and a "safe" os (time and date only). health.lua uses no os function; one
	// that did would fail here with "attempt to index a nil value".
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, pair := range []struct {
		n string
		f lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(pair.f), NRet: 0, Protect: true}, lua.LString(pair.n)); err != nil {
			return Verdict{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1*time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("actionParams", l.CreateTable(0, 0))
	l.SetGlobal("obj", argoDecodeValue(l, u.Object))

	fn, err := l.LoadString(script)
	if err == nil {
		l.Push(fn)
		err = l.PCall(0, lua.MultRet, nil)
	}
	if apiErr, ok := errors.AsType[*lua.ApiError](err); ok && apiErr.Type == lua.ApiErrorRun {
		apiErr.StackTrace = ""
		err = apiErr
	}
	if err != nil {
		return Verdict{}, err
	}

	returnValue := l.Get(-1)
	switch returnValue.Type() {
	case lua.LTTable:
		jsonBytes, err := luajson.Encode(returnValue)
		if err != nil {
			return Verdict{}, err
		}
		var health struct {
			Status  string `json:"status,omitempty"`
			Message string `json:"message,omitempty"`
		}
		if err := json.Unmarshal(jsonBytes, &health); err != nil {
			// An empty table encodes as [], which Argo CD reads as no health.
			typeError := &json.UnmarshalTypeError{Value: "array", Type: reflect.TypeOf(&health)}
			if errors.As(err, &typeError) {
				return Verdict{}, nil
			}
			return Verdict{}, err
		}
		switch health.Status {
		case "Unknown", "Progressing", "Suspended", "Healthy", "Degraded", "Missing":
			return Verdict{Status: health.Status, Message: health.Message}, nil
		}
		return Verdict{Status: "Unknown", Message: argoInvalidHealthStatus}, nil
	case lua.LTNil:
		return Verdict{}, nil
	}
	return Verdict{}, fmt.Errorf("expect table output from Lua script, not %s", returnValue.Type().String())
}

// argoDecodeValue is Argo CD's decodeValue (util/lua/lua.go), which turns the
// live object into the Lua value `obj`: maps and slices become tables, every
// number a Lua number (unstructured holds integers as int64), json.Number a string.
func argoDecodeValue(l *lua.LState, value any) lua.LValue {
	switch converted := value.(type) {
	case bool:
		return lua.LBool(converted)
	case float64:
		return lua.LNumber(converted)
	case string:
		return lua.LString(converted)
	case json.Number:
		return lua.LString(converted)
	case int:
		return lua.LNumber(converted)
	case int32:
		return lua.LNumber(converted)
	case int64:
		return lua.LNumber(converted)
	case []any:
		arr := l.CreateTable(len(converted), 0)
		for _, item := range converted {
			arr.Append(argoDecodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(converted))
		for key, item := range converted {
			tbl.RawSetH(lua.LString(key), argoDecodeValue(l, item))
		}
		return tbl
	case nil:
		return lua.LNil
	}
	return lua.LNil
}
