"""A Java function through the Lambda manager (Sprig's Java runtime, built once per cache)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from sprig.functions.config import LambdaConfig
from sprig.functions.function import Function
from sprig.functions.invocation import FunctionErrorKind, Invocation
from sprig.functions.worker import FunctionSpec
from sprig.lambda_params import ContainerMode

HANDLER = """
package demo;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.HashMap;
import java.util.Map;
public class Counter implements RequestHandler<Map<String, Object>, Map<String, Object>> {
    private int count;
    public Map<String, Object> handleRequest(Map<String, Object> in, Context ctx) {
        count++;
        if (in.containsKey("fail")) { throw new IllegalStateException("java boom"); }
        Map<String, Object> out = new HashMap<String, Object>();
        out.put("count", count);
        out.put("rid", ctx.getAwsRequestId());
        out.put("fn", ctx.getFunctionName());
        return out;
    }
}
"""

pytestmark = pytest.mark.skipif(shutil.which("java") is None or shutil.which("javac") is None,
                                reason="needs a JDK (java and javac)")


async def test_java_pinned_function(tmp_path: Path) -> None:
    from sprig.runtimes import java as jrt

    cache = tmp_path / "cache"
    jar = jrt.ensure_runtime_jar(cache)
    code = tmp_path / "code"
    src = tmp_path / "src" / "demo"
    src.mkdir(parents=True)
    (src / "Counter.java").write_text(HANDLER)
    subprocess.run(["javac", "-cp", str(jar), "-d", str(code / "classes"),
                    str(src / "Counter.java")], check=True)
    (tmp_path / "work").mkdir()
    spec = FunctionSpec(
        component_name="javacomp", component_version="1.0.0", function_name="javafn",
        function_version="2", function_arn="arn:aws:lambda:us-east-1:1:function:javafn:2",
        runtime="java11", handler="demo.Counter::handleRequest", code_dir=code,
        config=LambdaConfig(container_mode=ContainerMode.NO_CONTAINER, timeout_s=30),
        work_dir=tmp_path / "work", cache_dir=cache)
    fn = Function(spec)
    try:
        await asyncio.wait_for(fn.start(), 120)
        r = await asyncio.wait_for(fn.invoke(Invocation(b'{"a": 1}')), 60)
        d = json.loads(r.payload)
        assert r.ok and d == {"count": 1, "rid": r.request_id, "fn": "javafn"}
        r = await asyncio.wait_for(fn.invoke(Invocation(b'{"fail": true}')), 60)
        assert r.function_error is FunctionErrorKind.HANDLED
        err = json.loads(r.payload)
        assert "IllegalStateException" in err["errorType"] and err["errorMessage"] == "java boom"
        r = await asyncio.wait_for(fn.invoke(Invocation(b"{}")), 60)
        assert json.loads(r.payload)["count"] == 3            # one JVM, state kept
    finally:
        await fn.stop()
