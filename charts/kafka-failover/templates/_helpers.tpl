{{/* Names and labels shared by every template. */}}

{{- define "kafka-failover.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kafka-failover.fullname" -}}
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

{{- define "kafka-failover.operatorName" -}}
{{- printf "%s-operator" (include "kafka-failover.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kafka-failover.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kafka-failover.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "kafka-failover.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "kafka-failover.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kafka-failover
{{- end }}

{{- define "kafka-failover.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kafka-failover.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kafka-failover.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Labels of the gateway objects the operator creates (operator/failover_operator/manifests.py). */}}
{{- define "kafka-failover.gatewaySelector" -}}
app.kubernetes.io/name: kafka-failover-gateway
app.kubernetes.io/managed-by: kafka-failover-operator
{{- end }}
