{{/* The chart's name. */}}
{{- define "autocall-bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name: the release name, plus the chart name unless the release name contains it. */}}
{{- define "autocall-bridge.fullname" -}}
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

{{- define "autocall-bridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels selecting this release's pods. */}}
{{- define "autocall-bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "autocall-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "autocall-bridge.labels" -}}
helm.sh/chart: {{ include "autocall-bridge.chart" . }}
{{ include "autocall-bridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: autocall-bridge
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "autocall-bridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "autocall-bridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "autocall-bridge.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The Secret the chart makes for credentials given inline; empty when none is. */}}
{{- define "autocall-bridge.inlineSecretName" -}}
{{- if or .Values.amqp.url .Values.amqp.urls .Values.store.url .Values.apiKey.value .Values.apiToken.value (and .Values.webhook.enabled .Values.webhook.token.value) }}
{{- printf "%s-inline" (include "autocall-bridge.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
A credential's Secret reference, as "name/key", or "" when none is configured.
Called with (dict "item" .Values.amqp "inlineKey" "amqp-url" "valueKey" "url" "root" $).
*/}}
{{- define "autocall-bridge.secretRef" -}}
{{- $item := .item }}
{{- if get $item .valueKey }}
{{- printf "%s/%s" (include "autocall-bridge.inlineSecretName" .root) .inlineKey }}
{{- else if $item.existingSecret }}
{{- printf "%s/%s" $item.existingSecret $item.existingSecretKey }}
{{- end }}
{{- end }}

{{- define "autocall-bridge.amqpRef" -}}
{{- $amqp := merge (dict "url" (include "autocall-bridge.amqpUrl" .)) .Values.amqp }}
{{- include "autocall-bridge.secretRef" (dict "item" $amqp "inlineKey" "amqp-url" "valueKey" "url" "root" .) }}
{{- end }}
{{- /* The broker URL given inline: the cluster's nodes joined with commas, or the one URL. */}}
{{- define "autocall-bridge.amqpUrl" -}}
{{- if .Values.amqp.urls }}{{ join "," .Values.amqp.urls }}{{ else }}{{ .Values.amqp.url }}{{ end }}
{{- end }}
{{- define "autocall-bridge.storeRef" -}}
{{- include "autocall-bridge.secretRef" (dict "item" .Values.store "inlineKey" "store-url" "valueKey" "url" "root" .) }}
{{- end }}
{{- define "autocall-bridge.apiKeyRef" -}}
{{- include "autocall-bridge.secretRef" (dict "item" .Values.apiKey "inlineKey" "api-key" "valueKey" "value" "root" .) }}
{{- end }}
{{- define "autocall-bridge.webhookTokenRef" -}}
{{- if .Values.webhook.enabled }}
{{- include "autocall-bridge.secretRef" (dict "item" .Values.webhook.token "inlineKey" "webhook-token" "valueKey" "value" "root" .) }}
{{- end }}
{{- end }}
{{- define "autocall-bridge.apiTokenRef" -}}
{{- include "autocall-bridge.secretRef" (dict "item" .Values.apiToken "inlineKey" "api-token" "valueKey" "value" "root" .) }}
{{- end }}

{{- define "autocall-bridge.templatesConfigMap" -}}
{{- if .Values.templates.existingConfigMap }}
{{- .Values.templates.existingConfigMap }}
{{- else }}
{{- printf "%s-templates" (include "autocall-bridge.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The accounts file's ConfigMap, or "" when there is none (one account from apiKey/apiToken). */}}
{{- define "autocall-bridge.accountsConfigMap" -}}
{{- if .Values.accounts.existingConfigMap }}
{{- .Values.accounts.existingConfigMap }}
{{- else if .Values.accounts.inline }}
{{- printf "%s-accounts" (include "autocall-bridge.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The most replicas that may run at once: what the store must be able to serve. */}}
{{- define "autocall-bridge.maxReplicas" -}}
{{- if .Values.keda.enabled }}
{{- .Values.keda.maxReplicaCount }}
{{- else if .Values.hpa.enabled }}
{{- .Values.hpa.maxReplicas }}
{{- else }}
{{- .Values.replicaCount }}
{{- end }}
{{- end }}

{{/* Settings the named values own; `config` may not set them. */}}
{{- define "autocall-bridge.reservedSettings" -}}
AMQP_URL AMQP_URL_FILE STORE_URL STORE_URL_FILE STORE_MIN_REPLICAS STORE_WAIT_TIMEOUT API_KEY API_KEY_FILE API_TOKEN API_TOKEN_FILE API_BASE_URL TEMPLATES HTTP_PORT QUEUE SHUTDOWN_GRACE WEBHOOK_TOKEN WEBHOOK_TOKEN_FILE WEBHOOK_PORT WEBHOOK_ALLOW ACCOUNTS_FILE WEBHOOK_PUBLIC_URL
{{- end }}

{{/* Fails the render, naming the value to fix, on settings that would not run. */}}
{{- define "autocall-bridge.validate" -}}
{{- $amqp := include "autocall-bridge.amqpRef" . }}
{{- if not $amqp }}
{{- fail "amqp: set amqp.existingSecret (a Secret holding the broker URL) or amqp.url" }}
{{- end }}
{{- if and .Values.amqp.url (not (regexMatch "^amqps?://" .Values.amqp.url)) }}
{{- fail "amqp.url: must start with amqp:// or amqps://" }}
{{- end }}
{{- if and .Values.store.url (not (regexMatch "^(memory|redis|rediss|redis\\+sentinel|rediss\\+sentinel)://" .Values.store.url)) }}
{{- fail "store.url: must be memory://, redis://… (rediss:// for TLS) or redis+sentinel://…" }}
{{- end }}
{{- range .Values.amqp.urls }}
{{- if not (regexMatch "^amqps?://" .) }}
{{- fail "amqp.urls: each node's URL must start with amqp:// or amqps://" }}
{{- end }}
{{- end }}
{{- if and .Values.keda.enabled (eq .Values.keda.protocol "amqp") (gt (len .Values.amqp.urls) 1) (not .Values.keda.host.existingSecret) }}
{{- fail "keda: KEDA connects to one broker URL, and amqp.urls lists several: set keda.host.existingSecret to a Secret with one node's URL, or keda.protocol to http" }}
{{- end }}
{{- $max := include "autocall-bridge.maxReplicas" . | int }}
{{- $storeIsRedis := or (regexMatch "^rediss?(\\+sentinel)?://" .Values.store.url) (and (not .Values.store.url) .Values.store.existingSecret) }}
{{- if and (gt $max 1) (not $storeIsRedis) }}
{{- fail (printf "store: up to %d replicas may run (replicaCount, keda.maxReplicaCount or hpa.maxReplicas), and they must share a Redis store: set store.url to redis://… or store.existingSecret, or run one replica" $max) }}
{{- end }}
{{- $key := include "autocall-bridge.apiKeyRef" . }}
{{- $token := include "autocall-bridge.apiTokenRef" . }}
{{- if and $key $token }}
{{- fail "apiKey, apiToken: set exactly one of them (set apiKey.existingSecret to \"\" when you use apiToken)" }}
{{- end }}
{{- $accounts := include "autocall-bridge.accountsConfigMap" . }}
{{- if not (or $key $token $accounts) }}
{{- fail "apiKey: set apiKey.existingSecret (a Secret holding the API key) or apiKey.value, or use apiToken (or accounts)" }}
{{- end }}
{{- if and (regexMatch "provider:\\s*[\"']?stringee" .Values.accounts.inline) (not .Values.webhook.publicUrl) }}
{{- fail "webhook.publicUrl: required when an account uses Stringee (its callback URLs are built from it)" }}
{{- end }}
{{- if and .Values.accounts.secrets (not $accounts) }}
{{- fail "accounts.secrets: set accounts.inline (the accounts file) or accounts.existingConfigMap: the secrets are its accounts'" }}
{{- end }}
{{- if not (or .Values.templates.existingConfigMap .Values.templates.inline) }}
{{- fail "templates: set templates.inline (the templates file) or templates.existingConfigMap" }}
{{- end }}
{{- if lt (int .Values.terminationGracePeriodSeconds) (add (int .Values.shutdownGraceSeconds) 10 | int) }}
{{- fail (printf "terminationGracePeriodSeconds: %v is too short for a %vs drain (shutdownGraceSeconds): give it at least %d" .Values.terminationGracePeriodSeconds .Values.shutdownGraceSeconds (add (int .Values.shutdownGraceSeconds) 10)) }}
{{- end }}
{{- if and .Values.keda.enabled .Values.hpa.enabled }}
{{- fail "keda, hpa: enable one autoscaler only (KEDA makes its own HPA)" }}
{{- end }}
{{- if and .Values.keda.enabled (lt (int .Values.keda.maxReplicaCount) (int .Values.keda.minReplicaCount)) }}
{{- fail "keda.maxReplicaCount: must be at least keda.minReplicaCount" }}
{{- end }}
{{- if and .Values.hpa.enabled (lt (int .Values.hpa.maxReplicas) (int .Values.hpa.minReplicas)) }}
{{- fail "hpa.maxReplicas: must be at least hpa.minReplicas" }}
{{- end }}
{{- if and .Values.keda.enabled (eq .Values.keda.protocol "http") (not .Values.keda.host.existingSecret) }}
{{- fail "keda.host.existingSecret: the http protocol needs a Secret with the management API's URL" }}
{{- end }}
{{- include "autocall-bridge.validateWebhook" . }}
{{- range $name, $_ := .Values.tracing.env }}
{{- if has $name (list "OTEL_EXPORTER_OTLP_ENDPOINT" "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" "OTEL_SERVICE_NAME" "OTEL_TRACES_SAMPLER" "OTEL_TRACES_SAMPLER_ARG" "OTEL_RESOURCE_ATTRIBUTES" "OTEL_EXPORTER_OTLP_HEADERS") }}
{{- fail (printf "tracing.env.%s: set by the chart's named tracing values (endpoint, serviceName, sampler, samplerArg, resourceAttributes), or a credential (keep it in a collector)" $name) }}
{{- end }}
{{- end }}
{{- $reserved := splitList " " (include "autocall-bridge.reservedSettings" .) }}
{{- range $name, $_ := .Values.config }}
{{- $setting := upper $name | trimPrefix "AUTOCALL_" }}
{{- if has $setting $reserved }}
{{- fail (printf "config.%s: AUTOCALL_%s is set by the chart's named values (amqp, store, apiKey, apiToken, apiBaseUrl, templates, accounts, httpPort, shutdownGraceSeconds, webhook)" $name $setting) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The `OTEL_*` variables of `tracing`, when an endpoint is set (docs/tracing.md). */}}
{{- define "autocall-bridge.tracingEnv" -}}
{{- with .Values.tracing }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ .serviceName | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .sampler | quote }}
{{- with .samplerArg }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ . | quote }}
{{- end }}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- $attributes := list (printf "k8s.namespace.name=%s" $.Release.Namespace) "k8s.pod.name=$(K8S_POD_NAME)" }}
{{- range $name, $value := .resourceAttributes }}
{{- $attributes = append $attributes (printf "%s=%v" $name $value) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attributes | quote }}
{{- range $name, $value := .env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* A probe on the HTTP port. Called with (dict "probe" .Values.livenessProbe "path" "/healthz"). */}}
{{- define "autocall-bridge.probe" -}}
httpGet:
  path: {{ .path }}
  port: http
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end }}

{{/* The webhook listener's values: a token to read, and an Ingress only with a host and TLS. */}}
{{- define "autocall-bridge.validateWebhook" -}}
{{- $webhook := .Values.webhook }}
{{- if $webhook.enabled }}
{{- if not (include "autocall-bridge.webhookTokenRef" .) }}
{{- fail "webhook.token: set webhook.token.existingSecret (a Secret holding the webhook token) or webhook.token.value" }}
{{- end }}
{{- if and $webhook.token.value (lt (len $webhook.token.value) 32) }}
{{- fail "webhook.token.value: must be at least 32 characters (e.g. openssl rand -hex 32)" }}
{{- end }}
{{- if eq (int $webhook.port) (int .Values.httpPort) }}
{{- fail "webhook.port: must differ from httpPort: the webhook listener has a port of its own" }}
{{- end }}
{{- end }}
{{- if and $webhook.ingress.enabled (not $webhook.enabled) }}
{{- fail "webhook.ingress.enabled: needs webhook.enabled" }}
{{- end }}
{{- if and $webhook.ingress.enabled (not $webhook.ingress.host) }}
{{- fail "webhook.ingress.host: the public host name the provider posts to is required" }}
{{- end }}
{{- if and $webhook.ingress.enabled (not $webhook.ingress.tlsSecretName) }}
{{- fail "webhook.ingress.tlsSecretName: the provider posts over HTTPS: name the TLS Secret for the host" }}
{{- end }}
{{- end }}
