{{/* Common names and labels. */}}
{{- define "orthotriage.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "orthotriage.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "orthotriage.selectorLabels" -}}
app.kubernetes.io/name: {{ include "orthotriage.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "orthotriage.labels" -}}
{{ include "orthotriage.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "orthotriage.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- include "orthotriage.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "orthotriage.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "orthotriage.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The service's configuration file: the user's `config` with the paths of
the mounted secrets, the listen address and Redis' node addresses.
*/}}
{{- define "orthotriage.config" -}}
{{- $c := deepCopy .Values.config -}}
{{- $_ := set $c "listen" (printf "0.0.0.0:%d" (int .Values.containerPort)) -}}
{{- $auth := default dict (get $c "auth") -}}
{{- if .Values.secrets.issuers }}{{ $_ := set $auth "issuers_file" "/etc/orthotriage/secrets/issuers.yaml" }}{{ end -}}
{{- if .Values.secrets.privateKey }}{{ $_ := set $auth "private_key_file" "/etc/orthotriage/secrets/private-key.pem" }}{{ end -}}
{{- if not (get $auth "public_base_url") }}{{ $_ := unset $auth "public_base_url" }}{{ end -}}
{{- $_ := set $c "auth" $auth -}}
{{- if .Values.secrets.dicomwebCredentials -}}
{{- $im := default dict (get $c "imaging") -}}
{{- $_ := set $im "credentials_file" "/etc/orthotriage/secrets/dicomweb-credentials.yaml" -}}
{{- $_ := set $c "imaging" $im -}}
{{- end -}}
{{- if .Values.redis.addrs -}}
{{- $r := default dict (get $c "redis") -}}
{{- $_ := set $r "addrs" .Values.redis.addrs -}}
{{- if .Values.redis.masterName }}{{ $_ := set $r "master_name" .Values.redis.masterName }}{{ end -}}
{{- $_ := set $c "redis" $r -}}
{{- end -}}
{{- if .Values.gpu.enabled -}}
{{- $o := default dict (get $c "onnxruntime") -}}
{{- $_ := set $o "execution_provider" "cuda" -}}
{{- $_ := set $c "onnxruntime" $o -}}
{{- end -}}
{{- toYaml $c -}}
{{- end -}}
