{{/* Names: the release's objects are "<fullname>-<component>"; fullname is cut to leave room for the suffixes. */}}
{{- define "icn-global.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "icn-global.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "icn-global.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
app.kubernetes.io/name: {{ include "icn-global.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: icn-orchestrator
{{- end -}}

{{/* Selector labels of one component (api, worker): (dict "root" $ "component" "api"). */}}
{{- define "icn-global.selectorLabels" -}}
app.kubernetes.io/name: {{ include "icn-global.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "icn-global.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "icn-global.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "icn-global.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "icn-global.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- printf "%s-secrets" (include "icn-global.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "icn-global.artifactsClaim" -}}
{{- .Values.artifacts.persistence.existingClaim | default (printf "%s-artifacts" (include "icn-global.fullname" .)) -}}
{{- end -}}

{{/*
The secret variables both processes read. (dict "root" $ "apiTokens" true) adds ICN_API_TOKENS (the API's only).
The chart's own Secret (secrets.existingSecret "") holds the keys named in secrets.keys, like an existing one.
*/}}
{{- define "icn-global.secretEnv" -}}
{{- $root := .root -}}
{{- $s := $root.Values.secrets -}}
{{- $name := include "icn-global.secretName" $root -}}
- name: ICN_CODEC_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ $name }}
      key: {{ $s.keys.codecKeys }}
- name: ICN_SECRETS_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ $name }}
      key: {{ $s.keys.secretsKeys }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      {{- if $s.databaseUrlSecret.name }}
      name: {{ $s.databaseUrlSecret.name }}
      key: {{ $s.databaseUrlSecret.key }}
      {{- else }}
      name: {{ $name }}
      key: {{ $s.keys.databaseUrl }}
      {{- end }}
{{- if .apiTokens }}
- name: ICN_API_TOKENS
  valueFrom:
    secretKeyRef:
      name: {{ $name }}
      key: {{ $s.keys.apiTokens }}
      # Without tokens the API starts, and answers every route but /healthz and /metrics with 401.
      optional: true
{{- end }}
{{- end -}}

{{/* Temporal TLS files, mounted from temporal.tls.existingSecret. */}}
{{- define "icn-global.temporalTlsVolume" -}}
{{- if and .Values.temporal.tls.enabled .Values.temporal.tls.existingSecret }}
- name: temporal-tls
  secret:
    secretName: {{ .Values.temporal.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "icn-global.temporalTlsMount" -}}
{{- if and .Values.temporal.tls.enabled .Values.temporal.tls.existingSecret }}
- name: temporal-tls
  mountPath: /etc/icn/temporal-tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* What every pod of the chart has: the service account, the pod security context, pull secrets. */}}
{{- define "icn-global.podCommon" -}}
serviceAccountName: {{ include "icn-global.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Scheduling of one component: (dict "root" $ "component" "api" "values" .Values.api). Unless the component sets its
own topologySpreadConstraints, spreadAcrossNodes asks the scheduler to put replicas on different nodes when it can.
*/}}
{{- define "icn-global.scheduling" -}}
{{- $v := .values -}}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- if $v.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml $v.topologySpreadConstraints | nindent 2 }}
{{- else if $v.spreadAcrossNodes }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "icn-global.selectorLabels" (dict "root" .root "component" .component) | nindent 8 }}
{{- end }}
{{- end -}}

{{/* A PodDisruptionBudget for one component: (dict "root" $ "component" "api" "values" .Values.api). */}}
{{- define "icn-global.pdb" -}}
{{- $pdb := .values.podDisruptionBudget -}}
{{- if $pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "icn-global.fullname" .root }}-{{ .component }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "icn-global.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  {{- if not (kindIs "invalid" $pdb.minAvailable) }}
  minAvailable: {{ $pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $pdb.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "icn-global.selectorLabels" (dict "root" .root "component" .component) | nindent 6 }}
{{- end }}
{{- end -}}
