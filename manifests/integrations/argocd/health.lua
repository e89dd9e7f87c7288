-- Argo CD health check for cce.upgradewatch.io/CceUpgradeWatch.
-- Install it with argocd-cm.yaml (the same script, under
-- resource.customizations.health.cce.upgradewatch.io_CceUpgradeWatch).
--
--   Suspended    spec.suspend is true: polling is stopped on purpose
--   Progressing  no status yet, or the operator has not seen the latest spec
--                (status.observedGeneration < metadata.generation)
--   Degraded     Stalled=True: a task failed, or polling needs a person
--                (bad credentials, no permission, no such cluster)
--   Progressing  Reconciling=True: an upgrade is running
--   Healthy      Ready=True: no upgrade running, none stuck, polling works; while
--                UpgradeScheduled=True the message also says when the next
--                automatic upgrade may start
--   Progressing  anything else (e.g. a transient poll failure), with the Ready message
--
-- Only Stalled, Reconciling and Ready decide the health. The lifecycle conditions
-- (PreCheckPassed, UpgradeScheduled, UpToDate) never change it: a scheduled
-- upgrade, a failed pre-check or a waiting patch is news, not a broken app.
local hs = {}

local function find_condition(conditions, condition_type)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == condition_type then
      return condition
    end
  end
  return nil
end

local function describe(condition, fallback)
  if condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  if condition.reason ~= nil and condition.reason ~= "" then
    return condition.reason
  end
  return fallback
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Polling is suspended (spec.suspend is true)"
  return hs
end

local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the first poll of the CCE API"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = find_condition(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end

local reconciling = find_condition(status.conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling, "An upgrade is in progress")
  return hs
end

local ready = find_condition(status.conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  local scheduled = find_condition(status.conditions, "UpgradeScheduled")
  if scheduled ~= nil and scheduled.status == "True" then
    hs.message = hs.message .. "; " .. describe(scheduled, "an automatic upgrade is scheduled")
  end
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready, "Not ready")
else
  hs.message = "Waiting for the Ready condition"
end
return hs
