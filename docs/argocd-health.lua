-- Argo CD health check for modelfleet.dev/ModelDeployment (kstatus conventions).
-- Install: argocd-cm, key resource.customizations.health.modelfleet.dev_ModelDeployment
-- (docs/argocd.md). Tested against statuses captured from a running operator
-- (tests/unit/test_argocd_health.py, tests/integration/test_argocd_health.py).
--
--   Progressing  the operator has not reconciled the current generation yet, or
--                Progressing=True: replicas being created, loading the model, rolling out,
--                scaling (even while the old replicas keep Ready=True, like a Deployment)
--   Healthy      Ready=True (every wanted replica ready), or replicas: 0 (ScaledToZero)
--   Degraded     Degraded=True: InvalidSpec, NoFeasiblePlacement, Unschedulable, EngineFailing,
--                RolloutStuck (the message says why, in the operator's words)
local hs = {}

local function condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function say(c)
  if c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.reason
end

local generation = obj.metadata.generation
local status = obj.status
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the modelfleet operator to reconcile"
  return hs
end
if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local ready = condition(status.conditions, "Ready")
local degraded = condition(status.conditions, "Degraded")
local progressing = condition(status.conditions, "Progressing")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end
-- A condition written for an older generation says nothing about this one.
if generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for conditions of generation " .. generation
  return hs
end

if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = say(degraded)
  return hs
end
if progressing ~= nil and progressing.status == "True" then
  -- Rolling out, scaling, loading the model: like a Deployment mid-rollout, even while the old
  -- replicas keep Ready=True.
  hs.status = "Progressing"
  hs.message = say(progressing)
  return hs
end
if ready.status == "True" or ready.reason == "ScaledToZero" then
  hs.status = "Healthy"
  local limited = condition(status.conditions, "BudgetLimited")
  if limited ~= nil and limited.status == "True" then
    hs.message = say(ready) .. " (" .. say(limited) .. ")"
  else
    hs.message = say(ready)
  end
  return hs
end
if progressing ~= nil and progressing.status == "False" and progressing.reason ~= "Complete" then
  -- Not ready and no longer making progress: stuck, and the operator says why.
  hs.status = "Degraded"
  hs.message = say(progressing)
  return hs
end
hs.status = "Progressing"
hs.message = say(ready)
return hs
