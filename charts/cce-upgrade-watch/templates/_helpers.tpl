{{/* The release's full name, at most 63 characters. */}}
{{- define "cce-upgrade-watch.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cce-upgrade-watch.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "cce-upgrade-watch.labels" -}}
{{ include "cce-upgrade-watch.selectorLabels" . }}
app.kubernetes.io/part-of: cce-upgrade-watch
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "cce-upgrade-watch.serviceAccountName" -}}
{{- default (include "cce-upgrade-watch.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "cce-upgrade-watch.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Non-empty when a namespace value is a kopf pattern (glob or negation), not a name. */}}
{{- define "cce-upgrade-watch.hasNamespacePatterns" -}}
{{- range .Values.namespaces }}{{ if regexMatch "[*?\\[\\]!]" . }}true{{ end }}{{ end -}}
{{- end -}}

{{/* The rules on the watched objects and their Events (Secrets: rbac.secretAccess). */}}
{{- define "cce-upgrade-watch.objectRules" -}}
# The watched objects: kopf lists and watches them; patch only removes, once, the
# finalizer an older version left (this one adds none); the operator writes .status.
- apiGroups: [cce.upgradewatch.io]
  resources: [cceupgradewatches]
  verbs: [get, list, watch, patch]
- apiGroups: [cce.upgradewatch.io]
  resources: [cceupgradewatches/status]
  verbs: [patch]
# kopf posts core/v1 Events (create only).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}
