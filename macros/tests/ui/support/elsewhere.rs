#[tokio::test]
async fn in_another_file() {}
