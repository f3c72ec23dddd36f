{{/* Names: the release's objects are "<fullname>-<component>"; fullname is cut to leave room for the suffixes. */}}
{{- define "icn-site-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "icn-site-agent.fullname" -}}
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

{{- define "icn-site-agent.site" -}}
{{- required "site is required: the name of the Site resource this agent serves (ICN_SITE)" .Values.site -}}
{{- end -}}

{{- define "icn-site-agent.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
app.kubernetes.io/name: {{ include "icn-site-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: icn-orchestrator
icn.akraino.org/site: {{ include "icn-site-agent.site" . | quote }}
{{- end -}}

{{/* Selector labels of one component (agent, bpa): (dict "root" $ "component" "bpa"). */}}
{{- define "icn-site-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "icn-site-agent.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "icn-site-agent.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "icn-site-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "icn-site-agent.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "icn-site-agent.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "icn-site-agent.fullname" .)) -}}
{{- end -}}

{{- define "icn-site-agent.bpaTokensSecret" -}}
{{- .Values.bpa.tokens.existingSecret | default (printf "%s-bpa-tokens" (include "icn-site-agent.fullname" .)) -}}
{{- end -}}

{{/* The Secret of the SSH keys the chart creates from values (entries without existingSecret). */}}
{{- define "icn-site-agent.sshKeysSecret" -}}
{{- printf "%s-ssh-keys" (include "icn-site-agent.fullname" .) -}}
{{- end -}}

{{- define "icn-site-agent.knownHostsConfigMap" -}}
{{- .Values.bpa.knownHosts.existingConfigMap | default (printf "%s-known-hosts" (include "icn-site-agent.fullname" .)) -}}
{{- end -}}

{{- define "icn-site-agent.podCommon" -}}
serviceAccountName: {{ include "icn-site-agent.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* (dict "root" $ "values" .Values.agent) */}}
{{- define "icn-site-agent.scheduling" -}}
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
{{- end -}}
