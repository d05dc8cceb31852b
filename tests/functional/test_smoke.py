from tests.factories import statement_body


def test_create_and_open_link(client, merchant):
    resp = client.post("/api/v1/payment-requests", json=statement_body(), headers=merchant.headers)
    assert resp.status_code == 201, resp.json
    url = resp.json["url"]
    assert url.startswith("https://portal.test/p/pr_")
    page = client.get(url.removeprefix("https://portal.test"))
    assert page.status_code == 200
    assert "Test Shop" in page.text
