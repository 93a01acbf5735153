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

{{/* An image reference: repository@digest when a digest is set (it names exactly one
     image, so it wins over the tag), else repository:tag. For images other than
     kubetl's, which have no default version; call with (dict "image" .image "what" "values.path"). */}}
{{- define "kubetl.imageRef" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (toString (required (printf "%s needs a tag or a digest" .what) .image.tag)) -}}
{{- end -}}
{{- end -}}

{{/* The kubetl image (etl-job): the chart-wide `image`, unless a pipeline's
     `kubernetes.image` (or jobDefaults.image) overrides it. An override naming
     another repository or tag is another image: the chart-wide digest, which
     pins the chart-wide image, does not apply to it.
     Call with (dict "override" $k.image "ctx" $). */}}
{{- define "kubetl.etlImage" -}}
{{- $image := .ctx.Values.image -}}
{{- $override := .override | default dict -}}
{{- $repository := $override.repository | default $image.repository -}}
{{- $tag := toString ($override.tag | default $image.tag | default .ctx.Chart.AppVersion) -}}
{{- if $override.digest -}}
{{- printf "%s@%s" $repository $override.digest -}}
{{- else if or $override.repository $override.tag -}}
{{- printf "%s:%s" $repository $tag -}}
{{- else if $image.digest -}}
{{- printf "%s@%s" $repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}
{{- end -}}

{{/* A pipeline's or container job's CronJob: <fullname>-<name>, cut to 52
     characters (the CronJob controller appends 11 to name its Jobs, within 63).
     Call with (dict "name" $name "ctx" $). */}}
{{- define "kubetl.cronjobName" -}}
{{- printf "%s-%s" (include "kubetl.fullname" .ctx) .name | trunc 52 | trimSuffix "-" -}}
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
