-- Argo CD health check for microshop.dev/Shop (resource.customizations.health.microshop.dev_Shop).
-- Reads what the operator reports: spec.paused, status.observedGeneration and the Ready,
-- Progressing and Degraded conditions. Written for Argo CD's Lua 5.1 sandbox (no libraries).
local hs = {}

-- Ready=False reasons that need a person, not time (microshop_operator.status.Reason). Any
-- other reason (DatabaseNotReady, BusNotReady, ComponentsNotReady) is a shop on its way up.
-- ProgressDeadlineExceeded: a new version did not roll out (it crash-loops or cannot be
-- pulled); the old pods still serve, but waiting will not fix it.
local failureReasons = {
  InvalidSpec = true,
  ApplyFailed = true,
  ProgressDeadlineExceeded = true,
}

local function findCondition(conditions, conditionType)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == conditionType then
      return condition
    end
  end
  return nil
end

local function describe(condition, fallback)
  if condition == nil then
    return fallback
  end
  local message = condition.message
  if message == nil or message == "" then
    message = fallback
  end
  if condition.reason ~= nil and condition.reason ~= "" then
    return condition.reason .. ": " .. message
  end
  return message
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local status = obj.status or {}
local ready = findCondition(status.conditions, "Ready")
local degraded = findCondition(status.conditions, "Degraded")
local progressing = findCondition(status.conditions, "Progressing")

-- Paused first: the operator deliberately changes nothing, whatever the other conditions say.
local pausedByOperator = progressing ~= nil and progressing.reason == "Paused"
if (obj.spec ~= nil and obj.spec.paused == true) or pausedByOperator then
  hs.status = "Suspended"
  hs.message = "Shop is paused: the operator makes no changes until spec.paused is false"
  return hs
end

if obj.status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report the Shop's status"
  return hs
end

if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded, "Shop is degraded")
  return hs
end

if ready ~= nil and ready.status == "True" then
  -- A Ready condition written for an older generation says nothing about the current spec.
  if generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
    hs.status = "Progressing"
    hs.message = "Ready was reported for generation " .. ready.observedGeneration .. ", waiting for " .. generation
    return hs
  end
  hs.status = "Healthy"
  hs.message = describe(ready, "Shop is ready")
  return hs
end

if ready ~= nil and ready.status == "False" and failureReasons[ready.reason] then
  hs.status = "Degraded"
  hs.message = describe(ready, "Shop failed")
  return hs
end

hs.status = "Progressing"
if progressing ~= nil and progressing.status == "True" then
  hs.message = describe(progressing, "Components are starting")
else
  hs.message = describe(ready, "Components are starting")
end
return hs
