{{/* Labels of a component's objects: (list $ "swh-webhook"). */}}
{{- define "swh.labels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ index . 1 }}
app.kubernetes.io/part-of: swh
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version }}
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of a component's pods: (list $ "swh-webhook" .Values.webhook.podLabels). */}}
{{- define "swh.podLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ index . 1 }}
app.kubernetes.io/part-of: swh
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- with index . 2 }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* image: (list $ .Values.webhook.image). */}}
{{- define "swh.image" -}}
{{- $root := index . 0 -}}
{{- $img := index . 1 -}}
{{- $repo := $img.repository -}}
{{- with $root.Values.image.registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}{{ end -}}
image: {{ printf "%s:%s" $repo (default $root.Values.image.tag $img.tag) | quote }}
{{- with $root.Values.image.pullPolicy }}
imagePullPolicy: {{ . }}
{{- end }}
{{- end }}

{{/* Scheduling and pull secrets of a pod spec: (list $ .Values.webhook). */}}
{{- define "swh.podScheduling" -}}
{{- $root := index . 0 -}}
{{- $c := index . 1 -}}
{{- with $root.Values.image.pullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The controller's user name (the webhook lets it change child Services). */}}
{{- define "swh.controllerUsername" -}}
system:serviceaccount:{{ .Release.Namespace }}:swh-controller
{{- end }}

{{/* The webhook's CA as base64 (mode provided). */}}
{{- define "swh.caBundle" -}}
{{- $ca := required "webhook.certificate.provided.caBundle is required with webhook.certificate.mode=provided" .Values.webhook.certificate.provided.caBundle -}}
{{- if contains "-----BEGIN" $ca }}{{ b64enc $ca }}{{ else }}{{ $ca }}{{ end -}}
{{- end }}

{{/* cert-manager's CA injection annotation (mode cert-manager). */}}
{{- define "swh.injectCA" -}}
cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/swh-webhook
{{- end }}

{{- define "swh.validateMode" -}}
{{- if not (has .Values.webhook.certificate.mode (list "cert-manager" "provided")) }}
{{- fail (printf "webhook.certificate.mode must be cert-manager or provided, not %q" .Values.webhook.certificate.mode) }}
{{- end }}
{{- end }}
