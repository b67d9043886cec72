use leak_check::leak_check;

#[leak_check(off)]
mod tests {
    #[tokio::test]
    async fn a_test() {}
}

fn main() {}
