{{/*
Names and labels.
*/}}
{{- define "floe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "floe.fullname" -}}
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

{{/*
Name of a per-deployable resource: <fullname>-<deployable>, always <= 63 characters (a Service name is a
DNS label) without cutting into the deployable's suffix, so two deployables never collide.
Call with (dict "root" $ "name" "sink-postgres").
*/}}
{{- define "floe.componentFullname" -}}
{{- $prefix := include "floe.fullname" .root | trunc (int (sub 62 (len .name))) | trimSuffix "-" }}
{{- printf "%s-%s" $prefix .name }}
{{- end }}

{{- define "floe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Call with (dict "root" $ "component" "processor"); component may be empty. */}}
{{- define "floe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "floe.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "floe.labels" -}}
helm.sh/chart: {{ include "floe.chart" .root }}
{{ include "floe.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Values.image.tag | default .root.Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: floe-stream
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "floe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "floe.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The hook Job runs before the release's ServiceAccount exists, so it gets its own (a hook too). */}}
{{- define "floe.hookServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- printf "%s-hooks" (include "floe.fullname" . | trunc 57 | trimSuffix "-") }}
{{- else }}
{{- include "floe.serviceAccountName" . }}
{{- end }}
{{- end }}

{{- define "floe.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "floe.contractsConfigMapName" -}}
{{- .Values.contracts.existingConfigMap | default (printf "%s-contracts" (include "floe.fullname" . | trunc 53 | trimSuffix "-")) }}
{{- end }}

{{- define "floe.configConfigMapName" -}}
{{- .Values.config.existingConfigMap | default (printf "%s-config" (include "floe.fullname" . | trunc 56 | trimSuffix "-")) }}
{{- end }}

{{- define "floe.hookConfigMapName" -}}
{{- printf "%s-config-hook" (include "floe.fullname" . | trunc 51 | trimSuffix "-") }}
{{- end }}

{{- define "floe.kafkaAuthName" -}}
{{- printf "%s-kafka" (include "floe.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{/*
The deployables: name -> values key, command line, whether it consumes as a group <groupPrefix>-<name> (its
lag scales it), whether it needs the database, and whether its replicas share the partitions of a consumer
group (at most kafka.partitions of them have work: source-iceberg's replicas share the catalog's tables by the
catalog-commits partitions of <groupPrefix>-source-iceberg-<catalog>, reading nothing through it). This is the
one place that knows them.
*/}}
{{- define "floe.deployables" -}}
processor:
  valuesKey: processor
  args: [run, processor]
  consumerGroup: true
  database: false
  partitioned: true
ticker:
  valuesKey: ticker
  args: [run, ticker]
  consumerGroup: false
  database: false
  partitioned: false
sink-postgres:
  valuesKey: sinkPostgres
  args: [run, sink, postgres]
  consumerGroup: true
  database: true
  partitioned: true
sink-alerts:
  valuesKey: sinkAlerts
  args: [run, sink, alerts]
  consumerGroup: true
  database: true
  partitioned: true
sink-openlineage:
  valuesKey: sinkOpenlineage
  args: [run, sink, openlineage]
  consumerGroup: true
  database: false
  partitioned: true
source-iceberg:
  valuesKey: sourceIceberg
  args: [run, source, iceberg]
  consumerGroup: false
  database: false
  partitioned: true
{{- end }}

{{/* Consumer group of a deployable: <groupPrefix>-<name>, as the process derives it. */}}
{{- define "floe.consumerGroup" -}}
{{- printf "%s-%s" .root.Values.kafka.groupPrefix .name }}
{{- end }}

{{- define "floe.saslEnabled" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}true{{ end }}
{{- end }}

{{- define "floe.tlsEnabled" -}}
{{- if has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL") }}true{{ end }}
{{- end }}

{{/* TLS files are mounted only when TLS is on and a Secret is given. */}}
{{- define "floe.tlsSecretMounted" -}}
{{- if and (include "floe.tlsEnabled" .) .Values.kafka.tls.existingSecret }}true{{ end }}
{{- end }}

{{/*
Autoscaling of a deployable: "keda", "hpa" or "". Call with (dict "meta" $meta "c" $c).
*/}}
{{- define "floe.autoscaler" -}}
{{- if and .meta.consumerGroup .c.autoscaling }}
{{- if .c.autoscaling.keda.enabled }}keda{{ else if .c.autoscaling.hpa.enabled }}hpa{{ end }}
{{- end }}
{{- end }}

{{/* Smallest number of pods a deployable runs with (decides whether a PDB makes sense). */}}
{{- define "floe.minPods" -}}
{{- $as := include "floe.autoscaler" . }}
{{- if eq $as "keda" }}{{ .c.autoscaling.keda.minReplicas }}
{{- else if eq $as "hpa" }}{{ .c.autoscaling.hpa.minReplicas }}
{{- else }}{{ .c.replicas }}
{{- end }}
{{- end }}

{{/*
Environment of one container, as a YAML list; later entries with the same name win over earlier ones
(so a user's env can override a chart default without a duplicate name, which server-side apply rejects).
Call with (dict "root" $ "name" "processor" "meta" $meta "c" $c). The hook Job passes meta.hook=true (no
contracts, which are not mounted there — floe.yaml is, from its hook copy — and no secretEnv: channel secrets
are not its business) and c = (dict).
*/}}
{{- define "floe.envRaw" -}}
{{- $v := .root.Values -}}
- name: FLOE_KAFKA__BOOTSTRAP_SERVERS
  value: {{ $v.kafka.bootstrapServers | quote }}
- name: FLOE_KAFKA__SECURITY_PROTOCOL
  value: {{ $v.kafka.securityProtocol | quote }}
- name: FLOE_KAFKA__CLIENT_ID
  value: {{ printf "%s-%s" (include "floe.fullname" .root) .name | quote }}
- name: FLOE_KAFKA__TOPIC_PREFIX
  value: {{ $v.kafka.topicPrefix | quote }}
- name: FLOE_KAFKA__GROUP_PREFIX
  value: {{ $v.kafka.groupPrefix | quote }}
- name: FLOE_KAFKA__PARTITIONS
  value: {{ $v.kafka.partitions | int64 | quote }}
- name: FLOE_KAFKA__REPLICATION_FACTOR
  value: {{ $v.kafka.replicationFactor | int64 | quote }}
{{- if include "floe.saslEnabled" .root }}
- name: FLOE_KAFKA__SASL_MECHANISM
  value: {{ $v.kafka.sasl.mechanism | quote }}
- name: FLOE_KAFKA__SASL_USERNAME
  value: {{ $v.kafka.sasl.username | quote }}
- name: FLOE_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.kafka.sasl.password.existingSecret | quote }}
      key: {{ $v.kafka.sasl.password.key | quote }}
{{- end }}
{{- if include "floe.tlsSecretMounted" .root }}
{{- with $v.kafka.tls.caKey }}
- name: FLOE_KAFKA__SSL_CAFILE
  value: {{ printf "%s/%s" $v.kafka.tls.mountPath . | quote }}
{{- end }}
{{- with $v.kafka.tls.certKey }}
- name: FLOE_KAFKA__SSL_CERTFILE
  value: {{ printf "%s/%s" $v.kafka.tls.mountPath . | quote }}
{{- end }}
{{- with $v.kafka.tls.keyKey }}
- name: FLOE_KAFKA__SSL_KEYFILE
  value: {{ printf "%s/%s" $v.kafka.tls.mountPath . | quote }}
{{- end }}
{{- end }}
{{- if .meta.database }}
- name: FLOE_DATABASE__DSN
  valueFrom:
    secretKeyRef:
      name: {{ $v.database.dsn.existingSecret | quote }}
      key: {{ $v.database.dsn.key | quote }}
{{- end }}
{{- if not .meta.hook }}
- name: FLOE_CONTRACTS_DIR
  value: /etc/floe/contracts
{{- end }}
- name: FLOE_CONFIG_FILE
  value: /etc/floe/config/floe.yaml
- name: FLOE_HEALTH_PORT
  value: {{ $v.settings.healthPort | int64 | quote }}
- name: FLOE_LOG_LEVEL
  value: {{ $v.settings.logLevel | quote }}
- name: FLOE_LOG_FORMAT
  value: {{ $v.settings.logFormat | quote }}
- name: FLOE_TICK_INTERVAL_S
  value: {{ $v.settings.tickIntervalSeconds | toString | quote }}
- name: FLOE_CLOCK_SKEW_S
  value: {{ $v.settings.clockSkewSeconds | toString | quote }}
{{- range $scope := list $v .c }}
{{- range $k, $val := ($scope.env | default dict) }}
- name: {{ $k | quote }}
  value: {{ $val | toString | quote }}
{{- end }}
{{- with $scope.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- range (ternary (list) ($scope.secretEnv | default list) (eq (toString $.meta.hook) "true")) }}
- name: {{ .name | quote }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName | quote }}
      key: {{ .key | quote }}
      {{- if hasKey . "optional" }}
      optional: {{ .optional }}
      {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- define "floe.env" -}}
{{- $all := include "floe.envRaw" . | fromYamlArray }}
{{- $order := list }}
{{- $byName := dict }}
{{- range $e := $all }}
{{- if not (hasKey $byName $e.name) }}
{{- $order = append $order $e.name }}
{{- end }}
{{- $_ := set $byName $e.name $e }}
{{- end }}
{{- $out := list }}
{{- range $n := $order }}
{{- $out = append $out (get $byName $n) }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* Kafka TLS Secret volume and its mount (render only when floe.tlsSecretMounted). */}}
{{- define "floe.tlsVolume" -}}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tls.existingSecret | quote }}
    defaultMode: 0440
{{- end }}

{{- define "floe.tlsVolumeMount" -}}
- name: kafka-tls
  mountPath: {{ .Values.kafka.tls.mountPath }}
  readOnly: true
{{- end }}

{{/*
Checks that need more than one value (the per-value checks live in values.schema.json). Each failure
names the values to change.
*/}}
{{- define "floe.validate" -}}
{{- $v := .Values }}
{{- $root := . }}
{{- if include "floe.saslEnabled" . }}
{{- if not $v.kafka.sasl.username }}
{{- fail (printf "kafka.securityProtocol=%s needs kafka.sasl.username" $v.kafka.securityProtocol) }}
{{- end }}
{{- if not $v.kafka.sasl.password.existingSecret }}
{{- fail (printf "kafka.securityProtocol=%s needs kafka.sasl.password.existingSecret (a Secret with the SASL password)" $v.kafka.securityProtocol) }}
{{- end }}
{{- end }}
{{- if ne (empty $v.kafka.tls.certKey) (empty $v.kafka.tls.keyKey) }}
{{- fail "kafka.tls.certKey and kafka.tls.keyKey go together (mutual TLS needs both the certificate and its key)" }}
{{- end }}
{{- if and (include "floe.tlsSecretMounted" .) (not (or $v.kafka.tls.caKey $v.kafka.tls.certKey)) }}
{{- fail "kafka.tls.existingSecret is set but neither kafka.tls.caKey nor kafka.tls.certKey names a file in it" }}
{{- end }}
{{- if and $v.contracts.existingConfigMap $v.contracts.files }}
{{- fail "set either contracts.existingConfigMap or contracts.files, not both" }}
{{- end }}
{{- if and $v.config.existingConfigMap $v.config.floe }}
{{- fail "set either config.existingConfigMap or config.floe, not both" }}
{{- end }}
{{- $needDb := and $v.migrations.enabled $v.migrations.dbMigrate }}
{{- range $name, $meta := include "floe.deployables" . | fromYaml }}
{{- $c := index $v $meta.valuesKey }}
{{- if $c.enabled }}
{{- if $meta.database }}{{ $needDb = true }}{{ end }}
{{- $partitions := int64 $v.kafka.partitions }}
{{- $as := include "floe.autoscaler" (dict "meta" $meta "c" $c) }}
{{- if and $meta.partitioned (not $meta.consumerGroup) (gt (int64 $c.replicas) $partitions) }}
{{- fail (printf "%s.replicas=%d exceeds kafka.partitions=%d: its replicas share the tables by partition, those beyond the partition count sit idle" $meta.valuesKey (int64 $c.replicas) $partitions) }}
{{- end }}
{{- if $meta.consumerGroup }}
{{- if and $c.autoscaling.keda.enabled $c.autoscaling.hpa.enabled }}
{{- fail (printf "%s: enable at most one of autoscaling.keda and autoscaling.hpa (KEDA manages its own HPA)" $meta.valuesKey) }}
{{- end }}
{{- if and (eq $as "") (gt (int64 $c.replicas) $partitions) }}
{{- fail (printf "%s.replicas=%d exceeds kafka.partitions=%d: consumers beyond the partition count of group %s sit idle" $meta.valuesKey (int64 $c.replicas) $partitions (include "floe.consumerGroup" (dict "root" $root "name" $name))) }}
{{- end }}
{{- if $as }}
{{- $a := index $c.autoscaling $as }}
{{- if gt (int64 $a.minReplicas) (int64 $a.maxReplicas) }}
{{- fail (printf "%s.autoscaling.%s: minReplicas=%d is above maxReplicas=%d" $meta.valuesKey $as (int64 $a.minReplicas) (int64 $a.maxReplicas)) }}
{{- end }}
{{- if gt (int64 $a.maxReplicas) $partitions }}
{{- fail (printf "%s.autoscaling.%s.maxReplicas=%d exceeds kafka.partitions=%d: consumers beyond the partition count sit idle" $meta.valuesKey $as (int64 $a.maxReplicas) $partitions) }}
{{- end }}
{{- end }}
{{- if and (eq $as "hpa") (not (and $c.resources $c.resources.requests $c.resources.requests.cpu)) }}
{{- fail (printf "%s.autoscaling.hpa targets CPU utilization and needs %s.resources.requests.cpu" $meta.valuesKey $meta.valuesKey) }}
{{- end }}
{{- end }}
{{- if $v.preStop.enabled }}
{{- $grace := $v.terminationGracePeriodSeconds }}
{{- if not (kindIs "invalid" $c.terminationGracePeriodSeconds) }}{{ $grace = $c.terminationGracePeriodSeconds }}{{ end }}
{{- if ge (int64 $v.preStop.sleepSeconds) (int64 $grace) }}
{{- fail (printf "%s: preStop.sleepSeconds=%d leaves no time to drain within terminationGracePeriodSeconds=%d" $meta.valuesKey (int64 $v.preStop.sleepSeconds) (int64 $grace)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $needDb (not $v.database.dsn.existingSecret) }}
{{- fail "database.dsn.existingSecret is required by sinkPostgres, sinkAlerts and migrations.dbMigrate" }}
{{- end }}
{{- end }}
