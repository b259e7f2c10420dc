{{/* Helpers shared by every template of the recd chart. */}}

{{- define "recd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "recd.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "recd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "recd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "recd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "recd.labels" -}}
helm.sh/chart: {{ include "recd.chart" . }}
{{ include "recd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* recd.json: the user's config with the keys the chart owns (listen, paths) forced. */}}
{{- define "recd.configJson" -}}
{{- $forced := dict "listen" (printf "0.0.0.0:%d" (int .Values.containerPort)) "registry" "/var/lib/recd/registry" "events_path" "/var/lib/recd/data/events.jsonl" }}
{{- mustMergeOverwrite (deepCopy .Values.config) $forced | toPrettyJson }}
{{- end }}

{{- define "recd.registryClaim" -}}
{{- if .Values.registry.existingClaim }}{{ .Values.registry.existingClaim }}{{ else }}{{ include "recd.fullname" . }}-registry{{ end }}
{{- end }}
