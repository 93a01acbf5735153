{{/* Names */}}
{{- define "kubetl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubetl.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "kubetl.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "kubetl.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Standard labels; call with (dict "ctx" $ "component" "x") */}}
{{- define "kubetl.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{ include "kubetl.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "kubetl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubetl.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The label the NetworkPolicy admits to PostgreSQL. */}}
{{- define "kubetl.dbClientLabel" -}}
kubetl.io/db-client: {{ .Release.Name | quote }}
{{- end -}}

{{/* repository:tag or repository@digest; call with (dict "image" .image "default" $.Values.image "ctx" $) */}}
{{- define "kubetl.image" -}}
{{- $image := mergeOverwrite (deepCopy .default) (.image | default dict) -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (toString ($image.tag | default .ctx.Chart.AppVersion)) -}}
{{- end -}}
{{- end -}}

{{- define "kubetl.postgresql.host" -}}
{{- if .Values.postgresql.enabled -}}
{{- printf "%s-postgresql" (include "kubetl.fullname" .) -}}
{{- else -}}
{{- required "externalDatabase.host is required when postgresql.enabled is false" .Values.externalDatabase.host -}}
{{- end -}}
{{- end -}}

{{- define "kubetl.postgresql.secretName" -}}
{{- if not .Values.postgresql.enabled -}}
{{- required "externalDatabase.existingSecret is required when postgresql.enabled is false" .Values.externalDatabase.existingSecret -}}
{{- else if .Values.postgresql.auth.existingSecret -}}
{{- .Values.postgresql.auth.existingSecret -}}
{{- else -}}
{{- printf "%s-postgresql" (include "kubetl.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "kubetl.postgresql.secretKey" -}}
{{- if .Values.postgresql.enabled -}}{{ .Values.postgresql.auth.secretKey }}{{- else -}}{{ .Values.externalDatabase.secretKey }}{{- end -}}
{{- end -}}

{{/* libpq environment for every database client (etl-job reads PG*). */}}
{{- define "kubetl.dbEnv" -}}
- name: PGHOST
  value: {{ include "kubetl.postgresql.host" . | quote }}
- name: PGPORT
  value: {{ ternary "5432" (toString .Values.externalDatabase.port) .Values.postgresql.enabled | quote }}
- name: PGUSER
  value: {{ ternary .Values.postgresql.auth.username .Values.externalDatabase.username .Values.postgresql.enabled | quote }}
- name: PGDATABASE
  value: {{ ternary .Values.postgresql.auth.database .Values.externalDatabase.database .Values.postgresql.enabled | quote }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "kubetl.postgresql.secretName" . }}
      key: {{ include "kubetl.postgresql.secretKey" . }}
{{- end -}}

{{/* Pod Security "restricted": for pods and for containers. */}}
{{- define "kubetl.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "kubetl.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{- define "kubetl.etlctl.serviceAccountName" -}}
{{- default (printf "%s-etlctl" (include "kubetl.fullname" .)) .Values.etlctl.serviceAccount.name -}}
{{- end -}}
