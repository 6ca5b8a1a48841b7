-- Argo CD health check for argoproj.io/Application (resource.customizations.health.argoproj.io_Application).
-- Argo CD 1.8 dropped the built-in one; without it an app of apps does not wait for a child
-- Application (the operator, wave 0) to be Healthy before syncing the next wave (the Shop).
local hs = {}
hs.status = "Progressing"
hs.message = ""
if obj.status ~= nil and obj.status.health ~= nil then
  hs.status = obj.status.health.status
  if obj.status.health.message ~= nil then
    hs.message = obj.status.health.message
  end
end
return hs
