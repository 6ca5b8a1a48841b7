{{/* Names, labels and the operator pod template shared by the Deployment and StatefulSet. */}}

{{- define "microshop-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "microshop-operator.fullname" -}}
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

{{- define "microshop-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "microshop-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "microshop-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "microshop-operator.labels" -}}
helm.sh/chart: {{ include "microshop-operator.chart" . }}
{{ include "microshop-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: microshop
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "microshop-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "microshop-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "microshop-operator.peeringName" -}}
{{- default (include "microshop-operator.fullname" .) .Values.peering.name }}
{{- end }}

{{- define "microshop-operator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* True (non-empty) when more than one replica runs and kopf peering decides which works. */}}
{{- define "microshop-operator.peered" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{- define "microshop-operator.podTemplate" -}}
metadata:
  labels:
    {{- include "microshop-operator.selectorLabels" . | nindent 4 }}
    app.kubernetes.io/component: operator
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "microshop-operator.serviceAccountName" . }}
  automountServiceAccountToken: true
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  # Pod Security Standard "restricted": non-root numeric user, RuntimeDefault seccomp.
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    fsGroup: 10001
    seccompProfile:
      type: RuntimeDefault
  # kopf finishes its handlers on SIGTERM; give it time before the kill.
  terminationGracePeriodSeconds: 30
  containers:
    - name: operator
      image: {{ include "microshop-operator.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        # The image's CMD is replaced: the liveness endpoint listens where the probes look.
        - --liveness=http://0.0.0.0:{{ .Values.healthPort }}/healthz
        - --all-namespaces
        - --log-format={{ .Values.operator.logFormat }}
        {{- if .Values.operator.debug }}
        - --debug
        {{- end }}
        {{- if include "microshop-operator.peered" . }}
        - --peering={{ include "microshop-operator.peeringName" . }}
        # Kubernetes expands $(POD_INDEX) from the env below: each replica gets its own priority.
        - --priority=$(POD_INDEX)
        {{- else }}
        - --standalone
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
        {{- if include "microshop-operator.peered" . }}
        # The operator's own settings (microshop_operator.config) read the peering name too, so
        # its start-up handler does not fall back to standalone mode.
        - name: MICROSHOP_OPERATOR_PEERING_NAME
          value: {{ include "microshop-operator.peeringName" . | quote }}
        - name: POD_INDEX
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
        {{- end }}
        {{- if .Values.metrics.enabled }}
        - name: MICROSHOP_OPERATOR_METRICS_PORT
          value: {{ .Values.metrics.port | quote }}
        {{- end }}
        {{- with .Values.operator.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: health
          containerPort: {{ .Values.healthPort }}
          protocol: TCP
        {{- if .Values.metrics.enabled }}
        - name: metrics
          containerPort: {{ .Values.metrics.port }}
          protocol: TCP
        {{- end }}
      # kopf's liveness endpoint answers once the operator runs; a stalled operator stops answering.
      startupProbe:
        httpGet:
          path: /healthz
          port: health
        periodSeconds: {{ .Values.probes.startup.periodSeconds }}
        failureThreshold: {{ .Values.probes.startup.failureThreshold }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: health
        periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
        failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
        timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
      # Ready means the same as alive here: the operator serves no traffic but its metrics, and a
      # stalled one should drop out of the metrics Service before the liveness probe restarts it.
      readinessProbe:
        httpGet:
          path: /healthz
          port: health
        periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
        failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
        timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop:
            - ALL
      volumeMounts:
        - name: tmp
          mountPath: /tmp
  volumes:
    # The root filesystem is read-only; Python and aiohttp may still want a scratch directory.
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
