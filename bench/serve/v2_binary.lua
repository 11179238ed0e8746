-- wrk script: one-row V2 infer with the input as a binary tensor (FP32 [1, 20], the values of
-- v2_infer.lua), as KServe's official client sends it by default: the JSON header, then 80 raw
-- little-endian bytes (written out as escapes: wrk's LuaJIT has no string.pack).
wrk.method = "POST"
local header = '{"id":"1","inputs":[{"name":"input-0","shape":[1,20],"datatype":"FP32","parameters":{"binary_data_size":80}}]}'
local raw = "\205\204\204\61\205\204\76\62\154\153\153\62\205\204\204\62\0\0\0\63\154\153\25\63\51\51\51\63\205\204\76\63\102\102\102\63\0\0\128\63\205\204\140\63\154\153\153\63\102\102\166\63\51\51\179\63\0\0\192\63\205\204\204\63\154\153\217\63\102\102\230\63\51\51\243\63\0\0\0\64"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["Inference-Header-Content-Length"] = tostring(#header)
wrk.body = header .. raw
