{{/* Chart name, or nameOverride. */}}
{{- define "streamroom-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: fullnameOverride, or <release>-<chart> (just <release> when it already contains the chart name). */}}
{{- define "streamroom-operator.fullname" -}}
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

{{- define "streamroom-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "streamroom-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamroom-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "streamroom-operator.labels" -}}
helm.sh/chart: {{ include "streamroom-operator.chart" . }}
{{ include "streamroom-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: streamroom
{{- end }}

{{- define "streamroom-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "streamroom-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "streamroom-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The namespaces the operator works in: none listed (cluster-wide), or the listed ones, or its own. */}}
{{- define "streamroom-operator.namespaces" -}}
{{- if not .Values.rbac.clusterWide }}{{ join "," (.Values.watchNamespaces | default (list .Release.Namespace)) }}{{ end }}
{{- end }}

{{- define "streamroom-operator.defaultRoomImage" -}}
{{- default (printf "streamroom/room:%s" .Chart.AppVersion) .Values.defaultRoomImage }}
{{- end }}

{{/*
The rules the operator needs in each namespace it watches, read from operator/src (kube.ts, controller.ts):
- streamrooms: informers list and watch them (get for kubectl-like reads and future use);
- streamrooms/status: a JSON merge patch of the status;
- streamrooms/finalizers update: children carry an ownerReference with blockOwnerDeletion, which clusters
  running the OwnerReferencesPermissionEnforcement admission plugin only allow to who can update the
  owner's finalizers;
- children (Secret, Service, Deployment, HPA, Ingress): informers list and watch them, the reconciler
  reads one missing from the cache (get), writes with server-side apply (patch; applying an object that
  does not exist yet is authorized as create) and deletes the HPA when suspended or the Ingress when
  expose.type changes (delete);
- events: create (the Events of `kubectl describe streamroom`).
*/}}
{{- define "streamroom-operator.rules" -}}
- apiGroups: [streamroom.dev]
  resources: [streamrooms]
  verbs: [get, list, watch]
- apiGroups: [streamroom.dev]
  resources: [streamrooms/status]
  verbs: [patch]
- apiGroups: [streamroom.dev]
  resources: [streamrooms/finalizers]
  verbs: [update]
{{- if .Values.backplane.sharedRedisUrlSecret.name }}
# (the finalizer that deletes a room's user on the shared Redis)
- apiGroups: [streamroom.dev]
  resources: [streamrooms]
  verbs: [patch]
{{- end }}
# Secrets: a room's keys; never deleted by the operator (they go with the room)
- apiGroups: ['']
  resources: [secrets]
  verbs: [get, list, watch, create, patch]
- apiGroups: ['']
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [ingresses, networkpolicies]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: ['']
  resources: [events]
  verbs: [create]
# where the rooms' ready pods are, to ask their /live (status.live, viewers, lastActivityTime); and a
# hibernating room's slice <room>-waker, which points its Service at the waker
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch, create, patch, delete]
{{- end }}

{{/* The TURN gateway's name, and the Secret holding its secret. */}}
{{- define "streamroom-operator.turnName" -}}
{{- printf "%s-turn" (include "streamroom-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "streamroom-operator.turnSecretName" -}}
{{- default (include "streamroom-operator.turnName" .) .Values.turn.existingSecret }}
{{- end }}

{{/* The gateway's pods: a name of their own, so that no selector of the operator's matches them. */}}
{{- define "streamroom-operator.turnSelectorLabels" -}}
app.kubernetes.io/name: streamroom-turn
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: turn
{{- end }}

{{/* policy.allowedIngressHosts as the operator's flag: "ns=a,b;*=c". */}}
{{- define "streamroom-operator.allowedHosts" -}}
{{- $entries := list }}
{{- range $ns, $suffixes := .Values.policy.allowedIngressHosts }}
{{- $entries = append $entries (printf "%s=%s" $ns (join "," $suffixes)) }}
{{- end }}
{{- join ";" $entries }}
{{- end }}
