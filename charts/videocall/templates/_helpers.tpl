{{/* Names and labels shared by every template. */}}
{{- define "videocall.fullname" -}}
{{- if contains "videocall" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-videocall" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The Secret with the generated credentials, or the one the user brings. */}}
{{- define "videocall.credentialsSecret" -}}
{{- default (printf "%s-credentials" (include "videocall.fullname" .)) .Values.credentials.existingSecret -}}
{{- end -}}

{{- define "videocall.labels" -}}
app.kubernetes.io/part-of: videocall
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* image "repository" → [registry/]repository:tag */}}
{{- define "videocall.image" -}}
{{- $root := index . 0 -}}
{{- $repository := index . 1 -}}
{{- $tag := default $root.Chart.AppVersion $root.Values.image.tag -}}
{{- if $root.Values.image.registry -}}
{{- printf "%s/%s:%s" $root.Values.image.registry $repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "videocall.controlPlaneUrl" -}}
{{- printf "http://%s-control-plane.%s.svc:%d" (include "videocall.fullname" .) .Release.Namespace (int .Values.controlPlane.port) -}}
{{- end -}}

{{- define "videocall.natsUrl" -}}
{{- if .Values.nats.external.url -}}
{{- .Values.nats.external.url -}}
{{- else if .Values.nats.enabled -}}
{{- printf "nats://%s-nats.%s.svc:4222" (include "videocall.fullname" .) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{- define "videocall.pullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Every videocall container runs as the images' non-root user; fsGroup makes volumes writable. */}}
{{- define "videocall.podSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  fsGroup: 65532
{{- end -}}
