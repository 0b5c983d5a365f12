{{/* The chart's name. */}}
{{- define "meshgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the names of the objects. */}}
{{- define "meshgate.fullname" -}}
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

{{- define "meshgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "meshgate.labels" -}}
helm.sh/chart: {{ include "meshgate.chart" . }}
{{ include "meshgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: gateway
{{- end }}

{{/* What the Service, the PDB and the workload select: this release's pods only, never
     an istio-ingressgateway beside them. */}}
{{- define "meshgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meshgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "meshgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "meshgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "meshgate.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Where the mounted files are. */}}
{{- define "meshgate.configDir" -}}/etc/meshgate{{- end }}
{{- define "meshgate.configFile" -}}meshgate.yaml{{- end }}
{{- define "meshgate.tokenDir" -}}/var/run/secrets/tokens{{- end }}
{{- define "meshgate.tokenFile" -}}istio-token{{- end }}
{{- define "meshgate.rootCertDir" -}}/var/run/secrets/istio{{- end }}
{{- define "meshgate.rootCertFile" -}}root-cert.pem{{- end }}

{{/* The name istiod's certificate must hold: the value, else the address's host. */}}
{{- define "meshgate.istiodServerName" -}}
{{- if .Values.istiod.serverName }}
{{- .Values.istiod.serverName }}
{{- else }}
{{- $parts := splitList ":" .Values.istiod.address }}
{{- if ne (len $parts) 2 }}
{{- fail (printf "istiod.address must be host:port, got %q" .Values.istiod.address) }}
{{- end }}
{{- first $parts }}
{{- end }}
{{- end }}

{{/* terminationGracePeriodSeconds: the drain plus a margin, or the value when it is long enough. */}}
{{- define "meshgate.terminationGracePeriodSeconds" -}}
{{- $drain := add (int .Values.drain.periodSeconds) (int .Values.drain.timeoutSeconds) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $drain (int .Values.drain.marginSeconds) }}
{{- else if lt (int .Values.terminationGracePeriodSeconds) (int $drain) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) is shorter than drain.periodSeconds + drain.timeoutSeconds (%v): the kubelet would kill the gateway mid-drain" .Values.terminationGracePeriodSeconds $drain) }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/* meshgate's bootstrap YAML: the admin endpoint and the xDS source (istiod); with a
     secure istiod, the workload identity from its CA. */}}
{{- define "meshgate.bootstrap" -}}
{{- $ns := .Release.Namespace }}
{{- $tokenPath := printf "%s/%s" (include "meshgate.tokenDir" .) (include "meshgate.tokenFile" .) }}
{{- $rootPath := printf "%s/%s" (include "meshgate.rootCertDir" .) (include "meshgate.rootCertFile" .) }}
{{- $cfg := dict "admin" (dict "address" (printf "%s:%d" .Values.admin.bindAddress (int .Values.admin.port))) }}
{{- $istio := dict "namespace" $ns "pod" (include "meshgate.fullname" .) "cluster_id" .Values.istiod.clusterID "labels" .Values.labels }}
{{- $xds := dict "address" .Values.istiod.address "delta" .Values.istiod.delta "istio" $istio }}
{{- if .Values.istiod.secure }}
{{- $_ := set $xds "tls" (dict "ca_file" $rootPath "sni" (include "meshgate.istiodServerName" .)) }}
{{- $_ := set $xds "token_file" $tokenPath }}
{{- $ca := dict "address" .Values.istiod.address "root_cert_file" $rootPath "token_file" $tokenPath "server_name" (include "meshgate.istiodServerName" .) "trust_domain" .Values.istiod.trustDomain "namespace" $ns "service_account" (include "meshgate.serviceAccountName" .) "cluster_id" .Values.istiod.clusterID }}
{{- $_ := set $cfg "identity" (dict "istio_ca" $ca) }}
{{- end }}
{{- $_ := set $cfg "xds" $xds }}
{{- if .Values.istioMetrics.enabled }}
{{- $_ := set $cfg "istio_metrics" (dict "workload" (include "meshgate.fullname" .) "namespace" $ns) }}
{{- end }}
{{- $cfg = merge (deepCopy .Values.extraConfig) $cfg }}
{{- toYaml $cfg }}
{{- end }}

{{/* The pod template of the Deployment or DaemonSet. */}}
{{- define "meshgate.podTemplate" -}}
metadata:
  annotations:
    checksum/config: {{ include "meshgate.bootstrap" . | sha256sum }}
    sidecar.istio.io/inject: "false"
    {{- if .Values.metrics.scrapeAnnotations }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ .Values.readiness.port | quote }}
    prometheus.io/path: /stats/prometheus
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  labels:
    {{- include "meshgate.selectorLabels" . | nindent 4 }}
    {{- toYaml .Values.labels | nindent 4 }}
    sidecar.istio.io/inject: "false"
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "meshgate.serviceAccountName" . }}
  # meshgate does not talk to the Kubernetes API; istiod gets the projected token below.
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: {{ include "meshgate.terminationGracePeriodSeconds" . }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: meshgate
      image: {{ include "meshgate.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      # The image's ENTRYPOINT is /meshgate; these replace its CMD. $(VAR)s are expanded by
      # the kubelet from env (the image has no shell).
      args:
        - run
        - -c
        - {{ include "meshgate.configDir" . }}/{{ include "meshgate.configFile" . }}
        - -readiness-address
        - {{ printf "0.0.0.0:%d" (int .Values.readiness.port) | quote }}
        - -drain-period
        - {{ printf "%ds" (int .Values.drain.periodSeconds) }}
        - -drain-timeout
        - {{ printf "%ds" (int .Values.drain.timeoutSeconds) }}
        - -node-id
        - "router~$(POD_IP)~$(POD_NAME).$(POD_NAMESPACE)~$(POD_NAMESPACE).svc.cluster.local"
        - -node-metadata
        - NAME=$(POD_NAME)
        - -node-metadata
        - INSTANCE_IPS=$(POD_IP)
        - -log-level
        - {{ .Values.log.level }}
        {{- if .Values.log.json }}
        - -log-json
        {{- end }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        - name: POD_IP
          valueFrom:
            fieldRef:
              fieldPath: status.podIP
        {{- with .Values.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        {{- range .Values.service.ports }}
        - name: {{ .name }}
          containerPort: {{ .targetPort }}
          protocol: {{ get . "protocol" | default "TCP" }}
        {{- end }}
        - name: status-port
          containerPort: {{ .Values.readiness.port }}
          protocol: TCP
      readinessProbe:
        httpGet:
          path: /healthz/ready
          port: {{ .Values.readiness.port }}
          scheme: HTTP
        initialDelaySeconds: {{ .Values.readinessProbe.initialDelaySeconds }}
        periodSeconds: {{ .Values.readinessProbe.periodSeconds }}
        timeoutSeconds: {{ .Values.readinessProbe.timeoutSeconds }}
        successThreshold: {{ .Values.readinessProbe.successThreshold }}
        failureThreshold: {{ .Values.readinessProbe.failureThreshold }}
      {{- if .Values.livenessProbe.enabled }}
      livenessProbe:
        httpGet:
          path: {{ .Values.livenessProbe.path }}
          port: {{ .Values.readiness.port }}
          scheme: HTTP
        initialDelaySeconds: {{ .Values.livenessProbe.initialDelaySeconds }}
        periodSeconds: {{ .Values.livenessProbe.periodSeconds }}
        timeoutSeconds: {{ .Values.livenessProbe.timeoutSeconds }}
        failureThreshold: {{ .Values.livenessProbe.failureThreshold }}
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: {{ include "meshgate.configDir" . }}
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if .Values.istiod.secure }}
        - name: istio-token
          mountPath: {{ include "meshgate.tokenDir" . }}
          readOnly: true
        - name: istiod-ca-cert
          mountPath: {{ include "meshgate.rootCertDir" . }}
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "meshgate.fullname" . }}
    # /tmp, the only writable place (the root filesystem is read-only).
    - name: tmp
      emptyDir: {{ if .Values.tmpVolume.sizeLimit }}{ sizeLimit: {{ .Values.tmpVolume.sizeLimit }} }{{ else }}{}{{ end }}
    {{- if .Values.istiod.secure }}
    # The token istiod's CA and secure xDS port check, where Istio's agents expect it.
    - name: istio-token
      projected:
        sources:
          - serviceAccountToken:
              audience: {{ .Values.istiod.tokenAudience }}
              expirationSeconds: {{ .Values.istiod.tokenExpirationSeconds }}
              path: {{ include "meshgate.tokenFile" . }}
    # The mesh's root certificate, which istiod writes into every namespace.
    - name: istiod-ca-cert
      configMap:
        name: {{ .Values.istiod.rootCertConfigMap }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
