use leak_check::leak_check;

#[leak_check]
#[tokio::test]
async fn takes_an_argument(n: u32) {
    let _ = n;
}

fn main() {}
