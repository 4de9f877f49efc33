-- Argo CD resource health check for streamroom.dev/StreamRoom.
-- Install it under resource.customizations.health.streamroom.dev_StreamRoom in argocd-cm
-- (see argocd/argocd-cm.yaml). Written for Lua 5.1 (Argo CD runs gopher-lua).
--
--   status.phase Suspended                                      -> Suspended
--   status.phase Hibernating (asleep: nobody came; its URL wakes it) -> Healthy
--   status.phase Failed, or condition Degraded True             -> Degraded (the condition's message)
--   condition Ready True for the current metadata.generation    -> Healthy
--   anything else                                               -> Progressing (with a message)
--   no status yet                                               -> Progressing "Waiting for the operator"
local hs = {}

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  return hs
end

local function condition(kind)
  if obj.status.conditions ~= nil then
    for _, c in ipairs(obj.status.conditions) do
      if c.type == kind then
        return c
      end
    end
  end
  return nil
end

local ready = condition("Ready")
local degraded = condition("Degraded")
local phase = obj.status.phase

if phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = (ready ~= nil and ready.message) or "The room is suspended"
  return hs
end

-- A hibernating room is as it should be: it sleeps because nobody came, and wakes on its URL.
if phase == "Hibernating" and (degraded == nil or degraded.status ~= "True") then
  hs.status = "Healthy"
  hs.message = (ready ~= nil and ready.message) or "The room hibernates; its URL wakes it"
  return hs
end

if phase == "Failed" or (degraded ~= nil and degraded.status == "True") then
  hs.status = "Degraded"
  if degraded ~= nil and degraded.status == "True" and degraded.message ~= nil then
    hs.message = degraded.message
  elseif ready ~= nil and ready.message ~= nil then
    hs.message = ready.message
  else
    hs.message = "The room failed"
  end
  return hs
end

local generation = obj.metadata.generation
if ready ~= nil and ready.status == "True" then
  local observed = ready.observedGeneration
  if observed == nil then
    observed = obj.status.observedGeneration
  end
  if generation == nil or observed == generation then
    hs.status = "Healthy"
    hs.message = ready.message or "The room is ready"
    if obj.status.url ~= nil then
      hs.message = hs.message .. " (" .. obj.status.url .. ")"
    end
    return hs
  end
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

hs.status = "Progressing"
if ready ~= nil and ready.message ~= nil then
  hs.message = ready.message
elseif phase ~= nil then
  hs.message = "Phase " .. phase
else
  hs.message = "Waiting for the operator"
end
return hs
